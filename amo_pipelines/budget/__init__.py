"""An account's rate budget: the limiter and the window stores it keeps its windows in (one
event loop, every process of a machine through files, several machines through Redis)."""
