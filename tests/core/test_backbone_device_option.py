"""A bad ``device`` backbone option is named as such, with the values it takes.

It used to surface as "cannot read checkpoint ... a pickle with code in it": open_clip's loader
raised on the device and the failure was read as a damaged checkpoint.
"""

from __future__ import annotations

import pytest

from ceir_sdk.errors import BadInputError
from ceir_sdk.plugins import PluginHost


@pytest.mark.parametrize("device", ["nonsense", "0", "meta"])
def test_a_bad_device_names_the_option_and_the_values_it_takes(first_party_host: PluginHost, device: str) -> None:
    with pytest.raises(BadInputError) as err:
        first_party_host.resolve("backbone", "open-clip:ceir-world", device=device)
    message = str(err.value)
    assert f"device={device!r}" in message
    assert "'cpu'" in message and "'cuda'" in message and "auto" in message
    assert "checkpoint" not in message and "pickle" not in message


def test_a_cuda_device_beyond_the_gpus_there_is_named(first_party_host: PluginHost) -> None:
    import torch

    wanted = f"cuda:{torch.cuda.device_count() + 3}"
    with pytest.raises(BadInputError, match=f"device={wanted!r}") as err:
        first_party_host.resolve("backbone", "open-clip:ceir-world", device=wanted)
    assert "pickle" not in str(err.value)


def test_cpu_still_loads(first_party_host: PluginHost) -> None:
    backbone = first_party_host.resolve("backbone", "open-clip:ceir-world", device="cpu")
    assert backbone.device == "cpu" and backbone.embed_dim > 0
