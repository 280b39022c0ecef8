"""ChildSpec: defaults and validation errors that name the field and the fix."""

from __future__ import annotations

import dataclasses

import pytest

from supervisors import BRUTAL_KILL, ChildSpec, ChildType, Restart


def _start():
    return None


class TestChildSpecDefaults:
    """Defaults follow OTP: permanent workers with 5 s shutdown, supervisors with no limit."""

    def test_a_worker_defaults_to_permanent_and_five_seconds(self):
        """A bare spec is a permanent worker with shutdown 5.0 s."""
        spec = ChildSpec(id="w", start=_start)
        assert spec.restart is Restart.PERMANENT
        assert spec.type is ChildType.WORKER
        assert spec.shutdown == 5.0

    def test_a_supervisor_defaults_to_no_shutdown_limit(self):
        """type='supervisor' makes shutdown None (OTP's infinity)."""
        assert ChildSpec(id="s", start=_start, type="supervisor").shutdown is None

    def test_strings_are_normalised_to_enums(self):
        """restart='transient' becomes Restart.TRANSIENT."""
        spec = ChildSpec(id="w", start=_start, restart="transient", shutdown=BRUTAL_KILL)
        assert spec.restart is Restart.TRANSIENT
        assert spec.shutdown is BRUTAL_KILL

    def test_a_spec_is_frozen_and_keyword_only(self):
        """Specs cannot be changed nor built positionally."""
        spec = ChildSpec(id="w", start=_start)
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.id = "x"  # type: ignore[misc]
        with pytest.raises(TypeError):
            ChildSpec("w", _start)  # type: ignore[misc]


class TestChildSpecValidation:
    """Bad values raise errors that name the field, the value and the fix."""

    @pytest.mark.parametrize(
        ("options", "needle"),
        [
            ({"restart": "sometimes"}, "ChildSpec.restart='sometimes'"),
            ({"type": "manager"}, "ChildSpec.type='manager'"),
            ({"shutdown": 0}, "ChildSpec.shutdown=0 must be > 0"),
            ({"shutdown": -1.0}, "ChildSpec.shutdown=-1.0"),
            ({"shutdown": "5s"}, "ChildSpec.shutdown='5s'"),
            ({"shutdown": True}, "ChildSpec.shutdown=True"),
        ],
    )
    def test_bad_values_are_refused(self, options, needle):
        """Each invalid option is reported with its field and value."""
        with pytest.raises((ValueError, TypeError)) as info:
            ChildSpec(id="w", start=_start, **options)
        assert needle in str(info.value)

    def test_start_must_be_callable(self):
        """A non-callable start is refused with the fix."""
        with pytest.raises(TypeError, match=r"ChildSpec\.start=42 is not callable"):
            ChildSpec(id="w", start=42)  # type: ignore[arg-type]

    def test_id_must_be_hashable(self):
        """A list id is refused."""
        with pytest.raises(TypeError, match=r"ChildSpec\.id=\[1\] is not hashable"):
            ChildSpec(id=[1], start=_start)
