"""Local-feature re-ranking: a true match seen through a homography rises above look-alikes."""

import cv2
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.retrieval.rerank import LocalFeatureExtractor, count_inliers, rerank
from imet_kit.retrieval.search import Neighbours


def _texture(seed, h=241, w=319):
    """A smooth random texture: plenty of SIFT blobs, nothing shared between seeds."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 5, w // 5, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (3, 3), 0)


def _view(img):
    """The same scene from another viewpoint: a perspective warp with a slight zoom."""
    h, w = img.shape[:2]
    H = np.array([[0.95, 0.08, 12.0], [-0.04, 1.02, 6.0], [1e-4, 5e-5, 1.0]])
    return cv2.warpPerspective(img, H, (w, h), borderMode=cv2.BORDER_REFLECT)


def test_true_pair_has_many_inliers_and_unrelated_pair_few():
    ext = LocalFeatureExtractor("sift", max_keypoints=500)
    a, b = _texture(0), _texture(1)
    assert count_inliers(ext(_view(a)), ext(a)) > 25
    assert count_inliers(ext(_view(a)), ext(b)) < 5


@pytest.mark.parametrize("method", ["sift", "orb"])
def test_rerank_lifts_the_true_match(tmp_path, method):
    gallery = [_texture(1), _texture(0), _texture(2), _texture(3)]  # the match is row 1
    paths = []
    for i, img in enumerate(gallery):
        paths.append(str(tmp_path / f"g{i}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    query = _view(gallery[1])
    # The global embedding prefers the look-alike (row 0); row 3 lies below the re-ranked top.
    nb = Neighbours(np.array([[0, 2, 1, 3]]), np.array([[0.9, 0.8, 0.7, 0.6]], "float32"))
    out, inliers = rerank(nb, [query], paths, top=3, extractor=LocalFeatureExtractor(method),
                          progress=False)
    assert out.indices[0].tolist()[0] == 1
    assert out.indices[0, 3] == 3 and out.scores[0, 3] == pytest.approx(0.6)
    assert inliers[0, 0] >= 25 and out.scores[0, 0] == pytest.approx(0.7 + 1.0)
    assert (out.scores[0, 1:3] < 0.9 + 0.25).all()  # the others gained few inliers
    assert np.all(np.diff(out.scores[0]) <= 0)


def test_features_of_a_path_are_cached(tmp_path):
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, _texture(4))
    ext = LocalFeatureExtractor(cache_size=1)
    assert ext(path) is ext(path)
    ext(_texture(5))  # arrays are not cached and do not evict
    assert ext(path) is ext(path)


def test_bad_arguments():
    with pytest.raises(InputError, match="Unknown local feature method 'surf'. Expected one of: sift"):
        LocalFeatureExtractor("surf")
    nb = Neighbours(np.array([[0]]), np.array([[1.0]], "float32"))
    with pytest.raises(InputError, match="1 queries but 2 query images"):
        rerank(nb, [_texture(0), _texture(1)], [_texture(0)])
    blank = np.zeros((50, 50, 3), np.uint8)  # no keypoints: zero inliers, no exception
    ext = LocalFeatureExtractor()
    assert count_inliers(ext(blank), ext(_texture(0))) == 0
