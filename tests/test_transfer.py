"""Paper 5's pieces: cached spectrogram images, image augmentation, the image-input encoder,
batch-norm statistics of a random encoder, tied rankings, partial fine-tuning, the memoised text
encoder, corpus subsets, clip-wise epochs, and the WordNet lexicon read from database files in
WordNet's own format."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from zskit.encoders import create_audio_encoder
from zskit.errors import ConfigError, DependencyError
from zskit.models.dual_encoder import (
    DualEncoder,
    Precomputed,
    RetrievalPairs,
    count_parameters,
    fit_dual_encoder,
    paper5_config,
)
from zskit.models.transfer import (
    EpochCost,
    ImageAugment,
    ImageInputEncoder,
    MemoEncode,
    calibrate_batch_norm,
    embed_images,
    partial_finetune,
    spectrogram_images,
    subset_rows,
    tied_rankings,
)
from zskit.text_augment import TextNoise, wordnet_dir, wordnet_lexicon


@pytest.fixture(scope="module")
def tiny_image():
    return create_audio_encoder("efficientnet_lite0", tiny=True)


@pytest.fixture
def wav_files(tmp_path, tiny_image):
    rng = np.random.default_rng(0)
    paths = []
    for i, seconds in enumerate((0.5, 1.0, 1.5)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, rng.standard_normal(int(seconds * tiny_image.sample_rate)) * 0.1,
                 tiny_image.sample_rate)
        paths.append(path)
    return paths


def test_spectrogram_images_match_the_encoder_and_are_cached(tmp_path, tiny_image, wav_files):
    images = spectrogram_images(tiny_image, wav_files, batch_size=2, cache_dir=tmp_path / "c",
                                progress=False)
    h, w = tiny_image.cfg.image_size
    assert images.shape == (3, 1, h, w) and images.dtype == torch.float16
    from zskit.audio.io import load_audio

    wave = load_audio(wav_files[1], tiny_image.sample_rate)[None]
    torch.testing.assert_close(images[1:2].float(), tiny_image.image(wave), atol=2e-2, rtol=1e-2)
    (cached,) = (tmp_path / "c").glob("*.pt")
    torch.save(torch.zeros_like(images), cached)  # a second call must read the file
    again = spectrogram_images(tiny_image, wav_files, cache_dir=tmp_path / "c", progress=False)
    assert again.abs().sum() == 0
    with pytest.raises(ConfigError, match="not a spectrogram-image encoder"):
        spectrogram_images(create_audio_encoder("yamnet", tiny=True), wav_files)


def test_image_input_encoder_equals_the_encoder_on_waveforms(tiny_image, wav_files):
    tiny_image.eval()
    wave = torch.randn(2, tiny_image.sample_rate)
    wrapped = ImageInputEncoder(tiny_image, ImageAugment()).eval()
    expected = tiny_image(wave)
    torch.testing.assert_close(wrapped(tiny_image.image(wave)), expected)
    torch.testing.assert_close(embed_images(tiny_image, tiny_image.image(wave), batch_size=1),
                               expected)
    assert wrapped.embed_dim == tiny_image.embed_dim
    with pytest.raises(ConfigError, match="spectrogram images"):
        wrapped(wave)


def test_image_augment_masks_and_stretches_only_in_training():
    torch.manual_seed(0)
    images = torch.randn(4, 1, 16, 40) + 5.0  # no zeros before masking
    augment = ImageAugment(freq_mask=0.5, time_mask=0.5, stretch=(0.5, 0.5))
    assert torch.equal(augment.eval()(images), images)
    out = augment.train()(images)
    assert out.shape == images.shape
    # half-speed stretch: a 40-frame image becomes 20 frames, centred between columns of the
    # image's minimum (silence), which is also what the masks fill with
    floor = images.amin(dim=(1, 2, 3), keepdim=True).expand(-1, -1, 16, 10)
    assert torch.equal(out[..., :10], floor) and torch.equal(out[..., 30:], floor)
    assert (out >= images.amin(dim=(1, 2, 3), keepdim=True)).all()
    masked = out == images.amin(dim=(1, 2, 3), keepdim=True)
    assert masked[..., 10:30].any(), "the masks should fill with the minimum too"
    identity = ImageAugment(freq_mask=0.0, time_mask=0.0, stretch=(1.0, 1.0)).train()
    assert torch.equal(identity(images), images)
    for bad in ({"freq_mask": 1.0}, {"stretch": (1.2, 1.0)}, {"stretch": (0.0, 1.0)}):
        with pytest.raises(ConfigError):
            ImageAugment(**bad)


def _pairwise_cosine(x):
    x = torch.nn.functional.normalize(x, dim=1)
    return (x @ x.T)[~torch.eye(len(x), dtype=torch.bool)]


def test_calibrate_batch_norm_gives_a_random_encoder_embeddings_of_its_inputs():
    """Notebook 05's random-init runs scored below chance: with its initial batch-norm statistics
    a random EfficientNet-Lite0 (full depth) embeds every image as a near-zero, near-parallel
    vector. Statistics of the images give embeddings of order 1 that tell images apart."""
    torch.manual_seed(0)
    encoder = create_audio_encoder("efficientnet_lite0", image_size=(64, 64))
    images = torch.randn(11, 1, 64, 64) * 0.45 - 0.1
    before = embed_images(encoder, images)
    assert before.norm(dim=1).max() < 1e-3 and _pairwise_cosine(before).min() > 0.8
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta, modes = [m.momentum for m in norms], [m.training for m in encoder.modules()]
    assert calibrate_batch_norm(encoder, images, batch_size=5) == len(norms)  # 5, 5, 1 + 1
    assert [m.momentum for m in norms] == momenta
    assert [m.training for m in encoder.modules()] == modes
    after = embed_images(encoder, images)
    assert after.norm(dim=1).min() > 1.0 and _pairwise_cosine(after).mean() < 0.8
    # the stem's input is the same in training and eval mode: its output is now standardised
    # (up to the difference between the batches' average statistics and the whole set's)
    stem = encoder.backbone._bn0
    seen = []
    hook = stem.register_forward_hook(lambda _m, _i, out: seen.append(out))
    embed_images(encoder, images)
    hook.remove()
    out = seen[0].transpose(0, 1).flatten(1)  # (channels, values)
    torch.testing.assert_close(out.mean(1), torch.zeros(len(out)), atol=0.05, rtol=0)
    torch.testing.assert_close(out.var(1), torch.ones(len(out)), atol=0.15, rtol=0)
    with pytest.raises(ConfigError, match="batch_size"):
        calibrate_batch_norm(encoder, images, batch_size=1)


def test_tied_rankings_counts_captions_whose_clip_ties_with_another():
    captions = [[f"clip {i} a", f"clip {i} b"] for i in range(4)]
    text = {c: torch.randn(6) for cs in captions for c in cs}
    model = DualEncoder(Precomputed(5), Precomputed(6, encode=lambda ts: torch.stack(
        [text[t] for t in ts])), dim=3)
    torch.manual_seed(0)
    assert tied_rankings(model, RetrievalPairs(torch.randn(4, 5), captions)) == 0.0
    same = torch.randn(1, 5).expand(4, 5)  # one embedding for every clip: every ranking a tie
    assert tied_rankings(model, RetrievalPairs(same, captions)) == 1.0
    half = torch.cat([same[:2], torch.randn(2, 5)])  # clips 0 and 1 tie: their 4 captions of 8
    assert tied_rankings(model, RetrievalPairs(half, captions)) == 0.5


def test_check_05_fails_when_rankings_are_ties():
    def load(name):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    checks = load("checks_05")
    metrics = load("test_retrieval_checks")._metrics_05()
    metrics["ties"] = dict.fromkeys(checks.RUNS, 0.0)
    checks.check(metrics)
    metrics["ties"]["random init, projection only"] = 110 / 120  # the run before the fix
    with pytest.raises(AssertionError, match="collapsed to one point"):
        checks.check(metrics)
    del metrics["ties"]["random init, projection only"]
    with pytest.raises(AssertionError, match="ties of runs"):
        checks.check(metrics)


def test_partial_finetune_trains_last_blocks_and_keeps_classifier_frozen():
    encoder = create_audio_encoder("efficientnet_lite0", tiny=True)
    classifier = list(encoder.backbone._fc.parameters())
    names = partial_finetune(encoder, 2)
    assert names and all(n in dict(encoder.named_parameters()) for n in names)
    assert not any(p.requires_grad for p in classifier)
    assert not encoder.backbone._conv_stem.weight.requires_grad
    wrapped = ImageInputEncoder(encoder).train()
    frozen_bn = encoder.backbone._bn0
    assert not frozen_bn.training, "a frozen batch norm must keep its running statistics"
    images = torch.randn(3, 1, *encoder.cfg.image_size)
    wrapped(images).sum().backward()
    trainable = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
    assert {n for n, _ in trainable} == set(names)
    assert all(p.grad is not None for _, p in trainable)
    assert encoder.backbone._conv_stem.weight.grad is None


def test_frozen_blocks_stay_in_eval_mode_while_training():
    """EfficientNet-Lite's blocks drop their residual branch at random in training mode; frozen
    blocks must not (they would only add noise), trainable ones must."""
    encoder = create_audio_encoder("efficientnet_lite0", tiny=True, drop_connect_rate=0.5)
    partial_finetune(encoder, 1)
    blocks = list(encoder.backbone._blocks)
    wrapped = ImageInputEncoder(encoder).train()
    assert all(not b.training for b in blocks[:-1]), "frozen blocks must stay in eval mode"
    assert blocks[-1].training and wrapped.training
    images = torch.randn(4, 1, *encoder.cfg.image_size)
    seen = []
    hook = blocks[-2].register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    for seed in (1, 2):
        torch.manual_seed(seed)
        wrapped(images)
    hook.remove()
    torch.testing.assert_close(seen[0], seen[1], rtol=0, atol=0)
    wrapped.eval()
    assert not blocks[-1].training


def test_partial_finetune_counts_only_blocks_that_feed_the_embedding():
    from zskit.encoders.audio.image_backbones import ViTAudioConfig, ViTAudioEncoder

    # embedding from layer 1 of 4: layers 2 and 3 feed only the logits (frozen at creation)
    encoder = ViTAudioEncoder(ViTAudioConfig.tiny(num_layers=4, layer=1))
    names = partial_finetune(encoder, 2)
    layers = {n.split(".")[3] for n in names if ".layers." in n or ".layer." in n}
    assert layers == {"0", "1"}, names
    assert not any(p.requires_grad for n, p in encoder.named_parameters()
                   if "classifier" in n or ".2." in n or ".3." in n)
    assert partial_finetune(encoder, 0) == []
    with pytest.raises(ConfigError, match="k=-1"):
        partial_finetune(encoder, -1)
    for p in encoder.parameters():
        p.requires_grad_(False)  # nothing feeds the embedding any more
    with pytest.raises(ConfigError, match="nothing to train"):
        partial_finetune(encoder, 2)


def test_memo_encode_calls_the_encoder_once_per_new_caption():
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return torch.tensor([[float(len(t)), 1.0] for t in texts])

    memo = MemoEncode(encode, batch_size=2)
    out = memo(["a", "bb", "a", "ccc"])
    assert out.tolist() == [[1, 1], [2, 1], [1, 1], [3, 1]]
    assert memo.misses == 3 and calls == [["a", "bb"], ["ccc"]] and memo.seconds > 0
    memo(["bb", "dddd"])
    assert memo.misses == 4 and calls[-1] == ["dddd"]
    with pytest.raises(ConfigError):
        memo([])


def test_epoch_cost_leaves_out_the_first_epoch_and_new_captions():
    memo = MemoEncode(lambda ts: torch.zeros(len(ts), 2))
    cost = EpochCost(memo)
    with pytest.raises(ConfigError, match="callbacks"):
        _ = cost.seconds_per_epoch
    memo.seconds = 5.0  # spent before this run: not charged to it
    cost.on_train_start(None)
    cost.on_epoch_end(None, {"seconds": 9.0})  # warm-up epoch, left out
    assert cost.seconds_per_epoch == 9.0  # the only epoch so far
    memo.seconds = 6.5  # 1.5 s on new captions during the second epoch
    cost.on_epoch_end(None, {"seconds": 3.5})
    cost.on_epoch_end(None, {"seconds": 4.0})
    assert cost.net == [9.0, 2.0, 4.0] and cost.seconds_per_epoch == pytest.approx(3.0)


def test_subset_rows_keeps_split_proportions():
    splits = ["train"] * 70 + ["validation"] * 15 + ["test"] * 15
    rows = subset_rows(splits, 40, seed=1)
    assert {k: len(v) for k, v in rows.items()} == {"train": 28, "validation": 6, "test": 6}
    for name, r in rows.items():
        assert all(splits[i] == name for i in r) and list(r) == sorted(set(r))
    assert {k: len(v) for k, v in subset_rows(splits, None).items()} == {
        "train": 70, "validation": 15, "test": 15}
    with pytest.raises(ConfigError, match="too small"):
        subset_rows(splits, 5)


def test_items_per_epoch_and_image_training_run_through_fit(tiny_image):
    torch.manual_seed(0)
    encoder = create_audio_encoder("efficientnet_lite0", tiny=True)
    images = torch.randn(6, 1, *encoder.cfg.image_size).half()
    captions = [[f"clip {i} a", f"clip {i} b"] for i in range(6)]
    memo = MemoEncode(lambda ts: torch.randn(len(ts), 8))
    pairs = RetrievalPairs(images, captions, text_noise=TextNoise(0.5))
    assert len(list(pairs.loader(2, items_per_epoch=5))) == 3
    with pytest.raises(ConfigError, match="items_per_epoch"):
        pairs.loader(2, items_per_epoch=13)
    model = DualEncoder(ImageInputEncoder(encoder, ImageAugment()), Precomputed(8, encode=memo),
                        dim=4)
    before = {n: p.detach().clone() for n, p in encoder.named_parameters() if p.requires_grad}
    config = paper5_config(max_epochs=2, batch_size=3, progress=False, device="cpu")  # 1 step
    cost = EpochCost(memo)
    result = fit_dual_encoder(model, pairs, RetrievalPairs(images, captions), config,
                              items_per_epoch=3, callbacks=[cost])
    assert len(result.history) == 2 and result.history["val_loss"].notna().all()
    assert len(cost.net) == 2 and cost.seconds_per_epoch <= result.history["seconds"].iloc[1]
    assert count_parameters(model) > count_parameters(model.audio_projection)
    changed = [n for n, p in encoder.named_parameters() if n in before
               and not torch.equal(p, before[n])]
    assert changed, "training from scratch must move the encoder's weights"


def _write_wordnet(root):
    """Two noun synsets in WordNet's file format: byte offsets, hex word counts, pointers."""
    header = "  1 This software and database is being provided to you, the LICENSEE\n"

    def line(offset, word, other, pointers):
        return f"{offset:08d} 06 n 02 {word} 0 {other} 0 {pointers} | a gloss\n"

    def hypernym(offset):
        return f"001 @ {offset:08d} n 0000"

    violin = len(header)
    parent = violin + len(line(0, "violin", "fiddle", hypernym(0)))
    (root / "data.noun").write_text(
        header + line(violin, "violin", "fiddle", hypernym(parent))
        + line(parent, "bowed_stringed_instrument", "string", "000"))
    (root / "index.noun").write_text(
        f"{header}in n 1 0 1 0 {violin:08d}\nviolin n 1 1 @ 1 3 {violin:08d}\n")
    # "beat": a verb in more tagged senses than a noun (its hypernym "defeat" is not used);
    # "drone": a noun no sense of which is tagged (no entry)
    beat = len(header)
    defeat = beat + len(line(0, "beat", "trounce", hypernym(0)))
    (root / "data.verb").write_text(header + line(beat, "beat", "trounce", hypernym(defeat))
                                    + line(defeat, "defeat", "get_the_better_of", "000"))
    (root / "index.verb").write_text(f"{header}beat v 1 1 @ 1 5 {beat:08d}\n")
    with open(root / "index.noun", "a") as f:
        f.write(f"beat n 1 1 @ 1 2 {parent:08d}\ndrone n 1 1 @ 1 0 {violin:08d}\n")
    for pos in ("adj", "adv"):
        (root / f"data.{pos}").write_text(header)
        (root / f"index.{pos}").write_text(header)


def test_wordnet_lexicon_reads_database_files(tmp_path, monkeypatch):
    _write_wordnet(tmp_path)
    lexicon = wordnet_lexicon(["Violin", "in", "cello", "beat", "drone"], root=tmp_path)
    assert lexicon.synonyms == {"violin": ("fiddle",), "beat": ("trounce",)}
    assert lexicon.hypernyms == {"violin": ("bowed stringed instrument",)}
    noise = TextNoise(p=1.0, kinds=("hypernym",), lexicon=lexicon)
    assert noise(["A violin plays."], np.random.default_rng(0)) == [
        "A bowed stringed instrument plays."]
    monkeypatch.setenv("ZSKIT_WORDNET", str(tmp_path))
    assert wordnet_dir() == tmp_path
    monkeypatch.setenv("ZSKIT_WORDNET", str(tmp_path / "missing"))
    with pytest.raises(DependencyError, match="apt-get install wordnet-base"):
        wordnet_lexicon(["violin"])
