"""How export, plan, apply and copy report progress: a small protocol the CLI implements
(rich bars or plain lines) and a no-op default for library use."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Progress of one account. ``expect`` adds requests to the total, ``advance`` counts
    requests done, ``note`` reports a step in words."""

    def expect(self, requests: int) -> None: ...

    def advance(self, requests: int = 1) -> None: ...

    def note(self, text: str) -> None: ...


class NoProgress:
    def expect(self, requests: int) -> None:
        pass

    def advance(self, requests: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


NO_PROGRESS = NoProgress()
