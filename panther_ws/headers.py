"""Request headers as Panther exposes them: case-insensitive, attribute access, None if absent."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class Headers(Mapping[str, str]):
    """``headers["User-Agent"]``, ``headers["user-agent"]`` and ``headers.user_agent`` agree.

    A missing header reads as ``None`` (Panther's behaviour) instead of raising, so handlers
    can write ``if self.headers.authorization:``. Repeated headers are joined with ``", "``.
    """

    __slots__ = ("_values",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            values[key] = f"{values[key]}, {text}" if key in values else text
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values.get(name.lower())  # type: ignore[return-value]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._values.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __getattr__(self, name: str) -> str | None:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._values.get(name.replace("_", "-").lower())

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Headers({self._values!r})"
