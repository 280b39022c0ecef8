"""The clients and futures at the official `tinker.lib.public_interfaces` paths.

Official code imports them from here, or from one module per client
(`tinker.lib.public_interfaces.rest_client.RestClient`); both spellings give our classes.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

from tinkex_actors.clients.extras import LossHandle, PerDatumLossFn
from tinkex_actors.clients.sampling import SamplingClient
from tinkex_actors.clients.training import TrainingClient
from tinkex_actors.futures.client_future import ClientFuture
from tinkex_actors.futures.future import Future
from tinkex_actors.rest.admin_client import AdminClient
from tinkex_actors.rest.rest_client import RestClient
from tinkex_actors.service.service_client import ServiceClient

__all__ = [
    "APIFuture",
    "AdminClient",
    "AwaitableConcurrentFuture",
    "BackcompatSamplingClientFuture",
    "BackcompatTrainingClientFuture",
    "LossHandle",
    "PerDatumLossFn",
    "RestClient",
    "SamplingClient",
    "ServiceClient",
    "TrainingClient",
]

# Every future we return is a `Future`; a creation method's future of a client is a
# `ClientFuture`, usable as the client itself (the official back-compat futures).
APIFuture = Future
# Official: APIFuture's implementation over a concurrent future; ours is that one class.
AwaitableConcurrentFuture = Future
BackcompatTrainingClientFuture = ClientFuture
BackcompatSamplingClientFuture = ClientFuture
BackcompatClientFuture = ClientFuture  # their official common base

# One official module per class: (module, names it defines that we have).
_MODULES: dict[str, tuple[str, ...]] = {
    "admin_client": ("AdminClient",),
    "api_future": ("APIFuture", "AwaitableConcurrentFuture"),
    "backcompat_client_future": ("BackcompatClientFuture",),
    "backcompat_sampling_client_future": ("BackcompatSamplingClientFuture",),
    "backcompat_training_client_future": ("BackcompatTrainingClientFuture",),
    "custom_loss": ("LossHandle", "PerDatumLossFn"),
    "rest_client": ("RestClient",),
    "sampling_client": ("SamplingClient",),
    "service_client": ("ServiceClient",),
    "training_client": ("TrainingClient",),
}


def _register() -> None:
    package = sys.modules[__name__]
    for relative, names in _MODULES.items():
        name = f"{__name__}.{relative}"
        module = sys.modules.get(name)
        if module is None:
            module = ModuleType(name, f"Alias of the official `{relative}` module.")
            module.__spec__ = ModuleSpec(name, loader=None)  # importlib.util.find_spec works
            module.__dict__.update({n: globals()[n] for n in names})
            sys.modules[name] = module
        setattr(package, relative, module)


_register()
