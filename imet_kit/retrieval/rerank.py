"""Re-ranking retrieved candidates by local-feature geometric verification.

For the top candidates of each query: keypoints and descriptors from OpenCV (SIFT by
default), nearest-neighbour matching with Lowe's ratio test, a homography fitted with
MAGSAC++ (``cv2.USAC_MAGSAC``), and the new score ``global + min(inliers, 25) / 25``
(the Google Landmark 2020 recognition re-ranking). A true match seen from another
viewpoint shares many inliers and rises above look-alikes that only share global style.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm.auto import tqdm

from imet_kit.data.images import read_image
from imet_kit.errors import InputError, describe_choices
from imet_kit.retrieval.search import Neighbours

log = logging.getLogger(__name__)

METHODS = {"sift": cv2.NORM_L2, "orb": cv2.NORM_HAMMING, "akaze": cv2.NORM_HAMMING}


@dataclass
class LocalFeatures:
    """Keypoint positions ``(n, 2)`` (x, y pixels) and their descriptors ``(n, D)``."""

    points: np.ndarray
    descriptors: np.ndarray | None


class LocalFeatureExtractor:
    """Keypoints + descriptors of an image (array or path), on a copy at most ``max_side`` px.

    Args:
        method: ``"sift"`` (default), ``"orb"`` or ``"akaze"``.
        max_keypoints: strongest keypoints kept.
        max_side: longer image side after down-scaling (speed; SIFT on 640 px ~ 50 ms).
        cache_size: features of this many paths are kept (gallery images recur).
    """

    def __init__(self, method: str = "sift", max_keypoints: int = 1000, max_side: int = 640,
                 cache_size: int = 256) -> None:
        if method not in METHODS:
            raise InputError(f"Unknown local feature method '{method}'. Expected one of: "
                             f"{describe_choices(METHODS)}.")
        self.method, self.max_keypoints = method, int(max_keypoints)
        self.max_side, self.cache_size = int(max_side), int(cache_size)
        self.norm = METHODS[method]
        if method == "sift":
            self._detector = cv2.SIFT_create(nfeatures=self.max_keypoints)
        elif method == "orb":
            self._detector = cv2.ORB_create(nfeatures=self.max_keypoints)
        else:
            self._detector = cv2.AKAZE_create()
        self._cache: OrderedDict[str, LocalFeatures] = OrderedDict()

    def __call__(self, image: np.ndarray | str | os.PathLike) -> LocalFeatures:
        key = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        img = read_image(key) if key is not None else np.asarray(image)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        scale = self.max_side / max(gray.shape[:2])
        if scale < 1:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        kps, desc = self._detector.detectAndCompute(gray, None)
        if desc is not None and len(kps) > self.max_keypoints:  # AKAZE has no nfeatures
            keep = np.argsort([-k.response for k in kps], kind="stable")[: self.max_keypoints]
            kps, desc = [kps[i] for i in keep], desc[keep]
        pts = np.float32([k.pt for k in kps]).reshape(-1, 2)
        feats = LocalFeatures(pts, desc)
        if key is not None and self.cache_size > 0:
            self._cache[key] = feats
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return feats


def count_inliers(a: LocalFeatures, b: LocalFeatures, *, norm: int = cv2.NORM_L2, ratio: float = 0.8,
                  reproj_threshold_px: float = 5.0, min_matches: int = 8, max_iters: int = 2000,
                  confidence: float = 0.999) -> int:
    """Inliers of a MAGSAC++ homography between ratio-test matches of ``a`` and ``b``.

    Returns 0 when either image has under 2 keypoints, fewer than ``min_matches`` survive the
    ratio test, or no homography is found.
    """
    if a.descriptors is None or b.descriptors is None or len(a.points) < 2 or len(b.points) < 2:
        return 0
    pairs = cv2.BFMatcher(norm).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < max(min_matches, 4):
        return 0
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    try:
        _, mask = cv2.findHomography(src, dst, method=cv2.USAC_MAGSAC,
                                     ransacReprojThreshold=reproj_threshold_px,
                                     maxIters=max_iters, confidence=confidence)
    except cv2.error as exc:  # degenerate point sets
        log.debug("findHomography failed: %s", exc)
        return 0
    return 0 if mask is None else int(mask.sum())


def rerank(neighbours: Neighbours, query_images: Sequence, gallery_images: Sequence, *,
           top: int = 20, max_inliers: int = 25, extractor: LocalFeatureExtractor | None = None,
           ratio: float = 0.8, reproj_threshold_px: float = 5.0, progress: bool = True
           ) -> tuple[Neighbours, np.ndarray]:
    """Re-score each query's ``top`` candidates with ``global + min(inliers, max_inliers) / max_inliers``.

    Args:
        neighbours: from :func:`imet_kit.retrieval.search.search` (scores = global cosine).
        query_images: per query row, an image path or array.
        gallery_images: per gallery row, an image path or array.
        top: candidates verified per query; the rest keep their order below them.

    Returns:
        ``(reranked, inliers)``: neighbours re-sorted within the top ``top`` (scores there
        include the bonus) and the ``(n, top)`` inlier counts in the new order.
    """
    if len(query_images) != len(neighbours.indices):
        raise InputError(f"rerank: {len(neighbours.indices)} queries but {len(query_images)} query images.")
    if max_inliers < 1:
        raise InputError(f"max_inliers must be >= 1; received {max_inliers}.")
    extractor = extractor or LocalFeatureExtractor()
    top = min(int(top), neighbours.indices.shape[1])
    idx, scores = neighbours.indices.copy(), neighbours.scores.astype(np.float32).copy()
    inliers = np.zeros((len(idx), top), np.int64)
    for q in tqdm(range(len(idx)), desc="rerank", unit="query", disable=not progress or None):
        qf = extractor(query_images[q])
        for j in range(top):
            g = idx[q, j]
            if g >= 0:
                inliers[q, j] = count_inliers(qf, extractor(gallery_images[g]), norm=extractor.norm,
                                              ratio=ratio, reproj_threshold_px=reproj_threshold_px)
        new = scores[q, :top] + np.minimum(inliers[q], max_inliers) / max_inliers
        order = np.argsort(-new, kind="stable")
        idx[q, :top], scores[q, :top], inliers[q] = idx[q, :top][order], new[order], inliers[q][order]
    return Neighbours(idx, scores), inliers
