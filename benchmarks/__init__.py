"""Benchmarks of amo_pipelines against its embedded emulator (and the peer SDK aioamocrm).

Not part of the package and not run by CI. Run them with ``benchmarks/run`` (it builds the
separate ``.venv-bench`` environment from ``benchmarks/requirements.txt``); see
``benchmarks/README.md`` for what each benchmark measures and how to read the tables.
"""
