"""The result of comparing two databases or keyspaces (YSQL and YCQL share it)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TableComparison:
    table: str
    rows_a: int | None
    rows_b: int | None
    checksum_a: str | None
    checksum_b: str | None

    @property
    def identical(self) -> bool:
        return self.rows_a == self.rows_b and self.checksum_a == self.checksum_b


@dataclass
class Comparison:
    a: str
    b: str
    schema_diff: list[str] = field(default_factory=list)
    tables: list[TableComparison] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.schema_diff and all(t.identical for t in self.tables)

    @property
    def differing_tables(self) -> list[TableComparison]:
        return [t for t in self.tables if not t.identical]
