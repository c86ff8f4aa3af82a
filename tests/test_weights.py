"""zskit.encoders.weights: weight files read safely, and every loader reports a bad file as a
DataError that names it and says to download it again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from zskit.encoders.audio.image_backbones import (
    EfficientNetLiteAudioConfig,
    EfficientNetLiteAudioEncoder,
    load_efficientnet_lite0_weights,
)
from zskit.encoders.audio.panns import PannsCnn, PannsConfig, load_panns_weights
from zskit.encoders.audio.passt import PaSST, PaSSTConfig, load_passt_checkpoint
from zskit.encoders.audio.vggish import Vggish, VggishConfig, load_vggish_weights
from zskit.encoders.audio.yamnet import Yamnet, YamnetConfig, load_yamnet_weights
from zskit.encoders.base import PretrainedCfg
from zskit.encoders.weights import check_loading_info, check_state_dict, load_state_file
from zskit.errors import DataError


def _corrupt_copies(folder, state: dict) -> dict[str, object]:
    """A real checkpoint cut in half, random bytes, and an empty file."""
    good = folder / "good.pt"
    torch.save(state, good)
    data = good.read_bytes()
    files = {"truncated": data[: len(data) // 2], "garbage": np.random.default_rng(0).bytes(4096),
             "empty": b""}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.pt"
        paths[name].write_bytes(content)
    return paths


def test_load_state_file_reads_torch_numpy_and_safetensors(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "n": np.arange(4), "step": 3}
    torch.save(state, tmp_path / "a.pth")
    loaded = load_state_file(tmp_path / "a.pth")
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 3
    np.testing.assert_array_equal(loaded["n"], state["n"], err_msg="numpy arrays are allowed")
    save_file({"w": state["w"]}, str(tmp_path / "b.safetensors"))
    assert torch.equal(load_state_file(tmp_path / "b.safetensors")["w"], state["w"])


def test_load_state_file_turns_every_failure_into_a_data_error(tmp_path):
    for path in _corrupt_copies(tmp_path, {"w": torch.ones(1000)}).values():
        with pytest.raises(DataError, match=rf"{path.name}.*delete it and download it again"):
            load_state_file(path)
    (tmp_path / "x.safetensors").write_bytes(b"not a safetensors header")
    with pytest.raises(DataError, match=r"x\.safetensors"):
        load_state_file(tmp_path / "x.safetensors")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(DataError, match=r"tensor\.pt holds a Tensor, not a state dict"):
        load_state_file(tmp_path / "tensor.pt")
    with pytest.raises(DataError, match="does not exist"):
        load_state_file(tmp_path / "absent.pt")


class _Pickled:
    """A class the weights-only unpickler must refuse (it could run code)."""


def test_load_state_file_refuses_arbitrary_objects(tmp_path):
    torch.save({"obj": _Pickled()}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match=r"evil\.pt"):
        load_state_file(tmp_path / "evil.pt")


def test_check_state_dict_lists_every_problem_once():
    expected = {"a": (2, 3), "b": torch.zeros(4), "c": (1,), "bn.num_batches_tracked": ()}
    state = {"a": torch.zeros(3, 2), "b": torch.zeros(4), "extra": torch.zeros(1)}
    with pytest.raises(DataError) as err:
        check_state_dict(expected, state, "w.pth", "Use the right model.",
                         ignore=["*.num_batches_tracked"])
    message = str(err.value)
    assert message.startswith("w.pth does not fit the model"), message
    for part in ("missing keys ['c']", "unexpected keys ['extra']",
                 "wrong shapes ['a: checkpoint (3, 2) vs model (2, 3)']", "Use the right model."):
        assert part in message, f"{part!r} not in: {message}"
    assert "num_batches_tracked" not in message, "ignored keys must not be reported"
    check_state_dict(expected, {"a": torch.zeros(2, 3), "b": torch.zeros(4), "c": torch.zeros(1)},
                     "ok", "", ignore=["*.num_batches_tracked"])  # no error
    many = {f"k{i:02d}": (1,) for i in range(30)}
    with pytest.raises(DataError, match=r"\(30 in all\)"):
        check_state_dict(many, {}, "big", "")


def test_check_loading_info_reads_transformers_reports():
    info = {"missing_keys": ["pooler.dense.weight", "x.weight"], "unexpected_keys": ["cls.bias"],
            "mismatched_keys": []}
    with pytest.raises(DataError, match=r"missing keys \['x\.weight'\]") as err:
        check_loading_info(info, "hub model", "hint", ignore=["pooler.*", "cls.*"])
    assert "pooler" not in str(err.value) and "cls.bias" not in str(err.value)
    check_loading_info({"missing_keys": [], "unexpected_keys": []}, "hub model", "hint")


def _tiny_states() -> dict:
    """A loader per encoder that reads weight files, with a valid state to damage."""
    return {
        "panns": (lambda p: load_panns_weights(PannsCnn(PannsConfig.tiny()), p),
                  PannsCnn(PannsConfig.tiny()).state_dict()),
        "vggish": (lambda p: load_vggish_weights(Vggish(VggishConfig.tiny()), p),
                   Vggish(VggishConfig.tiny()).state_dict()),
        "passt": (lambda p: load_passt_checkpoint(PaSST(PaSSTConfig.tiny()), p),
                  PaSST(PaSSTConfig.tiny()).state_dict()),
        "yamnet": (lambda p: load_yamnet_weights(Yamnet(YamnetConfig.tiny()), p),
                   Yamnet(YamnetConfig.tiny()).state_dict()),
    }


@pytest.mark.parametrize("encoder", ["panns", "vggish", "passt", "yamnet"])
def test_every_loader_reports_a_damaged_file_as_a_data_error(tmp_path, encoder):
    load, state = _tiny_states()[encoder]
    good = tmp_path / "good.pt"
    torch.save(state, good)
    load(good)  # the intact file loads
    for path in _corrupt_copies(tmp_path, state).values():
        with pytest.raises(DataError, match=rf"{path.name}.*download it again"):
            load(path)


def test_lite0_loader_reports_a_damaged_file(tmp_path):
    encoder = EfficientNetLiteAudioEncoder(EfficientNetLiteAudioConfig.tiny())
    unchecked = PretrainedCfg(tag="x")  # no sha256: the damaged file reaches the reader
    for path in _corrupt_copies(tmp_path, encoder.backbone.state_dict()).values():
        with pytest.raises(DataError, match=rf"{path.name}.*download it again"):
            load_efficientnet_lite0_weights(encoder, path, pretrained=unchecked)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_yamnet_keras_readers_report_a_damaged_file(tmp_path, suffix):
    path = tmp_path / f"yamnet{suffix}"
    path.write_bytes(b"\x00not an archive" * 10)
    with pytest.raises(DataError, match=rf"yamnet\{suffix}.*download it again"):
        load_yamnet_weights(Yamnet(YamnetConfig.tiny()), path)
