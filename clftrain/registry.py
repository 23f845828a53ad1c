"""A small name -> factory registry, used for datasets, activations, losses and optimizers.

Names are known without importing the heavy libraries: factories import torch or
scikit-learn only when they are called, so `clftrain validate` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from clftrain.errors import UserError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # what the names are, for messages: "activation", "loss", ...
        self._factories: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@ACTIVATIONS.register("relu")`."""

        def add(factory: T) -> T:
            if name in self._factories:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._factories[name] = factory
            return factory

        return add

    def unregister(self, name: str) -> None:
        """Remove an entry (a test's temporary one, say); unknown names are an error, as in get."""
        if name not in self._factories:
            raise KeyError(name)
        del self._factories[name]

    def get(self, name: str) -> T:
        if name not in self._factories:
            raise UserError(self.unknown_message(name))
        return self._factories[name]

    def unknown_message(self, name: str) -> str:
        return (
            f"unknown {self.kind} '{name}'{did_you_mean(name, self._factories)}; "
            f"choose one of: {', '.join(self._factories)}"
        )

    def names(self) -> list[str]:
        return list(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)
