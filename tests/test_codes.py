"""adanns.codes: binarize / ITQ, LLC (determinism, codebook reproduction, nesting), CodeClassifier."""

from __future__ import annotations

import numpy as np
import pytest

import adanns
from adanns.codes import LLC, Binarizer, CodeClassifier, binarize, pack, unpack


def _blobs(seed, n=1200, d=32, classes=6, spread=0.35):
    """Labelled Gaussian clusters (separable, but not trivially: spread is a third of the gap)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    x = centres[y] + spread * rng.standard_normal((n, d))
    return x.astype(np.float32), (y * 10 + 3).astype(np.int64)  # labels need not be 0..L-1


@pytest.fixture(scope="module")
def fitted():
    x, y = _blobs(1)
    return LLC(16, nested=[8], epochs=8, code_epochs=8, batch_size=128, lr=1e-2, seed=5).fit(x, y), x, y


def test_binarize_is_the_sign_of_the_centred_prefix(rng):
    x = rng.standard_normal((50, 20)).astype(np.float32)
    want = np.packbits(x[:, :16] - x[:, :16].mean(axis=0, dtype=np.float64) >= 0, axis=1)
    np.testing.assert_array_equal(binarize(x, 16), want)
    np.testing.assert_array_equal(binarize(x, 8, center=False), np.packbits(x[:, :8] > 0, axis=1))
    # unrotated codes are nested: the first 8 bits of 16-bit codes are the 8-bit codes
    np.testing.assert_array_equal(binarize(x, 16)[:, :1], binarize(x, 8))


def test_itq_rotation_is_orthogonal_seeded_and_not_worse_than_identity(rng):
    x = (rng.standard_normal((400, 16)) @ rng.standard_normal((16, 16))).astype(np.float32)
    a = Binarizer(16, rotation="itq", seed=3).fit(x)
    np.testing.assert_allclose(a.rotation_ @ a.rotation_.T, np.eye(16), atol=1e-9)
    np.testing.assert_array_equal(a.encode(x), Binarizer(16, rotation="itq", seed=3).fit(x).encode(x))
    z = x.astype(np.float64) - a.mean_

    def quant_error(r):
        v = z @ r
        return np.square(np.where(v >= 0, 1, -1) - v).sum()

    assert quant_error(a.rotation_) <= quant_error(np.eye(16)) + 1e-6


def test_pack_unpack_roundtrip(rng):
    bits = rng.integers(0, 2, (5, 24)).astype(np.uint8)
    np.testing.assert_array_equal(unpack(pack(bits), 24), bits)
    np.testing.assert_array_equal(pack(2 * bits.astype(np.int8) - 1), pack(bits))


def test_llc_is_deterministic_for_a_seed(fitted):
    llc, x, y = fitted
    again = LLC(16, nested=[8], epochs=8, code_epochs=8, batch_size=128, lr=1e-2, seed=5).fit(x, y)
    np.testing.assert_array_equal(again.codebook, llc.codebook)
    np.testing.assert_array_equal(again.P_, llc.P_)
    np.testing.assert_array_equal(again.encode(x), llc.encode(x))
    other = LLC(16, nested=[8], epochs=8, code_epochs=8, batch_size=128, lr=1e-2, seed=6).fit(x, y)
    assert not np.array_equal(other.P_, llc.P_)


def test_training_codes_reproduce_the_codebook_for_the_reported_exact_accuracy(fitted):
    llc, x, y = fitted
    codes = llc.encode(x)
    rows = np.searchsorted(llc.classes_, y)
    exact = (codes == pack(llc.codebook[rows])).all(axis=1).mean()
    assert exact == pytest.approx(llc.train_exact_accuracy_)
    assert exact >= 0.9
    assert llc.codebook.shape == (6, 16) and set(np.unique(llc.codebook)) <= {-1, 1}
    assert len({r.tobytes() for r in pack(llc.codebook)}) == 6  # distinct class codes


def test_llc_codes_decode_by_min_hamming_and_nested_prefixes(fitted):
    llc, x, y = fitted
    clf = llc.classifier()
    assert (clf.predict_min_hamming(llc.encode(x)) == y).mean() >= 0.95
    # nested=[8]: the first 8 bits are a codebook of their own
    assert (clf.predict_min_hamming(llc.encode(x), bits=8) == y).mean() >= 0.8
    xt, yt = _blobs(2)
    assert set(np.unique(clf.predict_exact(llc.encode(xt)))) <= set(llc.classes_) | {-1}


def test_code_classifier_exact_min_hamming_and_ood():
    cb = np.array([[1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1],
                   [-1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 1]])
    clf = CodeClassifier(cb, labels=[4, 9])
    near = cb[0].copy()
    near[0] = -1  # one bit from class 4
    codes = pack(np.stack([cb[0], cb[1], near]))
    np.testing.assert_array_equal(clf.predict_exact(codes), [4, 9, -1])
    np.testing.assert_array_equal(clf.predict_min_hamming(codes), [4, 9, 4])
    np.testing.assert_array_equal(clf.is_ood(codes), [False, False, True])
    np.testing.assert_array_equal(clf.is_ood(codes, radius=1), [False, False, False])
    np.testing.assert_array_equal(clf.min_distance(codes), [0, 0, 1])


def test_code_classifier_duplicate_codes_go_to_the_first_row():
    cb = np.array([[1] * 8, [1] * 8, [-1] * 8])
    clf = CodeClassifier(cb)
    assert clf.duplicate_codes == 1
    np.testing.assert_array_equal(clf.predict_exact(pack(cb)), [0, 0, 2])
    np.testing.assert_array_equal(clf.predict_min_hamming(pack(cb)), [0, 0, 2])


def test_from_codes_takes_the_per_bit_majority():
    bits = np.array([[1, 1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 1],
                     [0, 0, 0, 0, 1, 1, 1, 1]], np.uint8)
    clf = CodeClassifier.from_codes(np.packbits(bits, axis=1), [2, 2, 2, 5])
    np.testing.assert_array_equal(clf.labels, [2, 5])
    np.testing.assert_array_equal(unpack(clf.packed, 8), [[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]])


def test_bad_input_raises_precisely(fitted):
    llc, x, y = fitted
    with pytest.raises(ValueError, match="nbits"):
        LLC(12)
    with pytest.raises(ValueError, match="nested"):
        LLC(16, nested=[32])
    with pytest.raises(TypeError, match="integers"):
        LLC(8).fit(x, y.astype(np.float64))
    with pytest.raises(ValueError, match="shape"):
        LLC(8).fit(x, y[:-1])
    with pytest.raises(RuntimeError, match="not fitted"):
        LLC(8).encode(x)
    with pytest.raises(ValueError, match="dimension"):
        llc.encode(x[:, :5])
    with pytest.raises(TypeError, match="uint8"):
        llc.classifier().predict_exact(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="2 bytes"):
        llc.classifier().predict_min_hamming(np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="dims"):
        binarize(x, 12)
    with pytest.raises(ValueError, match="rotation"):
        Binarizer(16, rotation="pca")
    with pytest.raises(RuntimeError, match="not fitted"):
        Binarizer(16).encode(x)


def test_package_exports():
    assert adanns.LLC is LLC and adanns.CodeClassifier is CodeClassifier and adanns.binarize is binarize
