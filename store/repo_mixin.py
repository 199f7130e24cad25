"""What a store mixin (dialer_repo, campaign_repo, token_repo, booking_repo, analysis_repo)
may use of `SqlRepository`: its dialect, its clock and its small driver.

Declared once here, for the type checker only: at run time the mixins are combined into
`SqlRepository`, which provides all of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from store.dialect import Dialect
    from store.repository import Row, Tx


class RepoMixin:
    """Base of the store mixins; adds nothing at run time."""

    __slots__ = ()

    if TYPE_CHECKING:
        dialect: Dialect
        clock: Callable[[], datetime]

        async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...
        async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
        def transaction(self, what: str = "write"
                        ) -> contextlib.AbstractAsyncContextManager[Tx]: ...
