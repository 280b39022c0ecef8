"""Registry: unique and duplicate keys, auto-unregister, dispatch, SupervisedRef."""

from __future__ import annotations

import random
import threading

import pytest
from pykka import ActorDeadError

from supervisors import AlreadyRegisteredError, Registry, SupervisedRef, kill
from supervisors.testing import wait_for_down

from ._actors import WAIT_S, Worker


class TestUniqueKeys:
    """One actor per key, removed when it dies."""

    def test_register_whereis_unregister(self):
        """A registered actor is found by key until it is unregistered."""
        registry, ref = Registry(), Worker.start("a")
        registry.register("a", ref)
        assert registry.whereis("a") is ref
        assert registry.keys_of(ref) == ["a"]
        assert registry.unregister("a") is True
        assert registry.whereis("a") is None
        assert registry.unregister("a") is False

    def test_a_taken_key_is_refused_with_the_holder(self):
        """Registering a second live actor under a unique key raises and names the key."""
        registry, a, b = Registry(), Worker.start("a"), Worker.start("b")
        registry.register("k", a)
        with pytest.raises(AlreadyRegisteredError, match="key 'k' is already registered"):
            registry.register("k", b)

    def test_an_entry_disappears_when_its_actor_dies(self):
        """A dead actor's key is free again, without anyone unregistering it."""
        registry, ref = Registry(), Worker.start("a")
        registry.register("a", ref)
        ref.tell("crash")
        wait_for_down(ref, WAIT_S)
        assert registry.whereis("a") is None
        assert len(registry) == 0
        registry.register("a", Worker.start("a2"))

    def test_a_dead_actor_cannot_be_registered(self):
        """register of a dead ref raises ActorDeadError and leaves nothing behind."""
        registry, ref = Registry(), Worker.start("a")
        ref.stop(timeout=WAIT_S)
        with pytest.raises(ActorDeadError):
            registry.register("a", ref)
        assert len(registry) == 0

    def test_bad_modes_are_refused(self):
        """Registry(keys=...) accepts only unique or duplicate."""
        with pytest.raises(ValueError, match="keys='many'"):
            Registry(keys="many")  # type: ignore[arg-type]


class TestDuplicateKeys:
    """Many actors per key, with dispatch."""

    def test_lookup_and_dispatch_reach_every_live_member(self):
        """dispatch tells every live actor under the key and counts them."""
        registry = Registry(keys="duplicate")
        members = [Worker.start(i) for i in range(3)]
        for ref in members:
            registry.register("topic", ref)
        assert {r.actor_urn for r in registry.lookup("topic")} == {r.actor_urn for r in members}
        members[0].tell("crash")
        wait_for_down(members[0], WAIT_S)
        assert registry.dispatch("topic", "ping") == 2
        assert registry.unregister("topic", members[1]) is True
        assert registry.lookup("topic") == [members[2]]


class TestConcurrency:
    """Register and die from many threads at once."""

    def test_concurrent_register_and_death_leave_only_live_entries(self):
        """After a storm of registrations and kills, the registry holds exactly the living."""
        registry = Registry()
        rng = random.Random(7)
        refs = [Worker.start(i) for i in range(120)]
        doomed = set(rng.sample(range(120), 60))
        barrier = threading.Barrier(4, timeout=WAIT_S)
        errors: list[BaseException] = []

        def worker(part: int) -> None:
            try:
                barrier.wait()
                for i in range(part, 120, 4):
                    registry.register(("w", i), refs[i])
                    if i in doomed:
                        kill(refs[i])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(p,)) for p in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        assert errors == []
        for i in doomed:
            wait_for_down(refs[i], WAIT_S)
        assert len(registry) == 60
        for i, ref in enumerate(refs):
            assert registry.whereis(("w", i)) is (None if i in doomed else ref)


class TestSupervisedRef:
    """A stable handle resolved through the registry."""

    def test_calls_reach_the_registered_actor_or_fail_fast(self):
        """ask goes to the current holder; with none, ActorDeadError at once."""
        registry = Registry()
        handle = SupervisedRef("svc", registry)
        with pytest.raises(ActorDeadError):
            handle.ask("ping", timeout=WAIT_S)
        assert handle.is_alive() is False
        registry.register("svc", Worker.start("svc"))
        assert handle.ask("ping", timeout=WAIT_S) == "pong"
        with pytest.raises(ActorDeadError, match="within 0"):
            SupervisedRef("nobody", registry).resolve(0)

    def test_a_duplicate_registry_is_refused(self):
        """A SupervisedRef needs unique keys, and says so."""
        with pytest.raises(ValueError, match="keys='unique'"):
            SupervisedRef("x", Registry(keys="duplicate"))
