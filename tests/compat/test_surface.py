"""The official SDK's public surface, name by name, against ours (see `surface.py`)."""

from __future__ import annotations

import pytest

pytest.importorskip("tinker")

from tests.compat import surface


@pytest.fixture(scope="module")
def report() -> surface.Report:
    return surface.compare()


class TestOfficialSurface:
    def test_every_difference_is_reviewed_in_the_allow_list(self, report):
        """A name, method, parameter or return type that differs must be listed with a reason."""
        allowed = surface.allowlist()
        unlisted = {k: v for k, v in report.differences.items() if k not in allowed}
        listing = "\n".join(f"  {k}: {v}" for k, v in sorted(unlisted.items()))
        assert not unlisted, f"differences from official tinker not in allowlist.toml:\n{listing}"

    def test_no_allow_list_entry_outlives_its_difference(self, report):
        """An entry whose difference is gone (fixed) must be deleted from the allow-list."""
        stale = sorted(set(surface.allowlist()) - set(report.differences))
        assert not stale, "fixed; delete from allowlist.toml: " + ", ".join(stale)

    def test_every_entry_gives_a_reason(self):
        """Each allow-list entry says why the difference is accepted."""
        short = [k for k, why in surface.allowlist().items() if len(why.split()) < 4]
        assert not short, f"entries without a real reason: {short}"

    def test_the_surface_figure_counts_the_official_clients(self, report):
        """The figure covers every official client method (issue 15 measured 100)."""
        fig = report.figure
        print(f"\n{fig}")
        assert fig.total == 100
        assert fig.signatures <= fig.present <= fig.total and fig.returns <= fig.present


class TestComparisonCanFail:
    def test_a_changed_default_and_return_type_are_reported(self):
        """The comparison sees a default, a kind and a return annotation that differ."""

        class Theirs:
            def call(self, a: int, b: int = 1) -> list[int]: ...

        class Ours:
            def call(self, a: int, *, b: int = 2) -> int: ...

        Theirs.__module__ = "tinker.fake"
        report = surface.Report()
        surface._compare_class("Fake", Theirs, Ours, report, counted=True)
        assert set(report.differences) == {"params:Fake.call", "returns:Fake.call"}
        assert report.figure.total == 1 and report.figure.present == 1

    def test_spellings_of_one_type_compare_equal(self):
        """APIFuture/Future, List/list, module prefixes and Optional are one type each."""
        assert surface.normalise("APIFuture[types.SampleResponse]") == surface.normalise(
            "Future[SampleResponse]"
        )
        assert surface.normalise("Optional[List[int]]") == surface.normalise("list[int] | None")
