"""The one version string: the package, its User-Agent, the CLI and the build read it."""

__version__ = "0.1.0"
