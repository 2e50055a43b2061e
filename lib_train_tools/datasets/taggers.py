"""Auto-taggers behind one small interface (``contracts.Tagger``), and why one is unavailable.

Two implementations:

- ``InterrogatorTagger``: the WebUI's BLIP or DeepDanbooru interrogator. The host adapter passes
  in the WebUI's function (image -> text); this module never imports the WebUI.
- ``WD14Tagger``: a WD14-style ONNX model folder (``model.onnx`` + ``selected_tags.csv``) run by
  onnxruntime, imported only when tagging starts. ``selected_tags.csv`` gives each score a
  category: 0 general, 4 character, 9 rating (SmilingWolf's WD taggers). General tags are kept at
  ``threshold`` (0.35 by default), character tags at ``character_threshold`` (the general one when
  not given), both most confident first; with ``character_tags_first`` the character tags lead.
  Ratings are one-of-four (general, sensitive, questionable, explicit), so ``include_rating``
  adds only the highest-scoring one, by its plain name and in front, as sd-scripts'
  ``tag_images_by_wd14_tagger.py --use_rating_tags`` does. Images go through the model
  ``batch_size`` at a time (a model whose batch dimension is fixed gets exactly that many).

``availability()`` says whether a tagger can run and, if not, why and what to install or where
to put the model. Nothing is ever downloaded here.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..contracts import Availability, Tagger
from .captions import parse_tags
from .image_ops import flatten

WD14_MODEL_FILE = "model.onnx"
WD14_TAGS_FILE = "selected_tags.csv"
WD14_CATEGORY_GENERAL = 0
WD14_CATEGORY_CHARACTER = 4
WD14_CATEGORY_RATING = 9
WD14_DEFAULT_SIZE = 448
# The character threshold the form suggests: SmilingWolf's wd-tagger demo uses 0.85 for characters
# (a character tag below it is usually a look-alike), against 0.35 for general tags.
WD14_SUGGESTED_CHARACTER_THRESHOLD = 0.85
WD14_MAX_BATCH = 64
# Short tags with underscores are emoticons such as ^_^ and keep them.
_KEEP_UNDERSCORE_BELOW = 4


class TaggerUnavailable(RuntimeError):
    """The tagger cannot run here; the message says why and what to do."""


class TaggerError(ValueError):
    """A tagger's model files are malformed."""


class InterrogatorTagger:
    """The WebUI's BLIP (a sentence) or DeepDanbooru (comma-separated tags) via an injected callable."""

    def __init__(self, name: str, interrogate: Callable[[Image.Image], str] | None, kind: str = "tags"):
        if kind not in ("sentence", "tags"):
            raise ValueError(f"kind {kind!r} must be 'sentence' or 'tags'")
        self.name = name
        self.kind = kind
        self._interrogate = interrogate

    def availability(self) -> Availability:
        if self._interrogate is None:
            return Availability(
                False,
                f"{self.name} is the WebUI's interrogator and only works inside the WebUI",
                "run Train Tools from the WebUI's tab, or use a WD14 ONNX tagger in the standalone app",
            )
        return Availability(True)

    def tag(self, image: Image.Image) -> list[str]:
        _require(self)
        assert self._interrogate is not None  # _require raised when there is no interrogator
        text = self._interrogate(image) or ""
        if self.kind == "sentence":
            sentence = " ".join(text.split())
            return [sentence] if sentence else []
        return parse_tags(text)

    def with_threshold(self, threshold: float) -> InterrogatorTagger:
        """The WebUI's interrogators give no scores: the same tagger."""
        return self


@dataclass(frozen=True)
class WD14Options:
    threshold: float = 0.35                   # general tags (category 0) scored at least this
    character_threshold: float | None = None  # character tags (category 4); None: ``threshold``
    underscores_to_spaces: bool = True
    exclude: tuple[str, ...] = ()
    include_rating: bool = False              # put the top rating tag (category 9) first
    character_tags_first: bool = False       # character tags before general ones (each by confidence)
    batch_size: int = 4                       # images per model call

    def __post_init__(self) -> None:
        for label, value in (("threshold", self.threshold), ("character_threshold", self.character_threshold)):
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"WD14 {label} {value} must be between 0 and 1")
        if not 1 <= self.batch_size <= WD14_MAX_BATCH:
            raise ValueError(f"WD14 batch_size {self.batch_size} must be between 1 and {WD14_MAX_BATCH}")


@dataclass(frozen=True)
class WD14Label:
    name: str
    category: int


class WD14Tagger:
    """A WD14-style tagger folder run with onnxruntime (or an injected session, for tests)."""

    def __init__(
        self,
        model_dir: str | Path,
        options: WD14Options = WD14Options(),
        session_factory: Callable[[Path], Any] | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.name = f"WD14 ({self.model_dir.name})"
        self.options = options
        self._session_factory = session_factory
        self._session = None
        self._labels: list[WD14Label] | None = None

    def availability(self) -> Availability:
        if self._session_factory is None and importlib.util.find_spec("onnxruntime") is None:
            return Availability(
                False,
                "the onnxruntime package is not installed",
                f'press "Install onnxruntime" in the Auto-tag box, or run "{sys.executable}" -m pip install '
                "onnxruntime (onnxruntime-gpu instead for torch with CUDA 12 and cuDNN 9)",
            )
        for required in (WD14_MODEL_FILE, WD14_TAGS_FILE):
            if not (self.model_dir / required).is_file():
                return Availability(
                    False,
                    f"{self.model_dir} has no {required}",
                    f"download a WD14 tagger's {WD14_MODEL_FILE} and {WD14_TAGS_FILE} "
                    f"(e.g. SmilingWolf/wd-swinv2-tagger-v3) into {self.model_dir}",
                )
        return Availability(True)

    def with_threshold(self, threshold: float) -> WD14Tagger:
        """A copy keeping general tags scored at least ``threshold`` (it shares the loaded model)."""
        return self.with_options(threshold=float(threshold))

    def with_options(self, **changes: Any) -> WD14Tagger:
        """A copy with these ``WD14Options`` fields changed (it shares the loaded model)."""
        tagger = copy.copy(self)
        tagger.options = dataclasses.replace(self.options, **changes)
        return tagger

    def images_per_call(self) -> int:
        """How many images one model call takes: the model's fixed batch size, else ``options.batch_size``."""
        _require(self)
        return _fixed_batch(self._load_session().get_inputs()[0].shape) or self.options.batch_size

    def tag(self, image: Image.Image) -> list[str]:
        return self.tag_batch([image])[0]

    def tag_batch(self, images: Sequence[Image.Image]) -> list[list[str]]:
        """Each image's tags, in one model call per ``images_per_call()`` images."""
        _require(self)
        session = self._load_session()
        model_input = session.get_inputs()[0]
        size = _square_size(model_input.shape)
        fixed = _fixed_batch(model_input.shape)
        step = fixed or self.options.batch_size
        labels = self._load_labels()
        tags: list[list[str]] = []
        for start in range(0, len(images), step):
            chunk = [prepare_wd14_input(image, size) for image in images[start:start + step]]
            if fixed is not None:  # a fixed batch dimension: fill the last call up with copies
                chunk += [chunk[-1]] * (fixed - len(chunk))
            scores = np.asarray(session.run(None, {model_input.name: np.concatenate(chunk)})[0])
            wanted = min(step, len(images) - start)
            if scores.ndim != 2 or scores.shape[0] < wanted:
                raise TaggerError(f"the model gave scores of shape {scores.shape} for {len(chunk)} images")
            tags.extend(select_wd14_tags(row, labels, self.options) for row in scores[:wanted])
        return tags

    def _load_session(self) -> Any:
        if self._session is None:
            model = self.model_dir / WD14_MODEL_FILE
            if self._session_factory is not None:
                self._session = self._session_factory(model)
            else:
                import onnxruntime

                providers = onnxruntime.get_available_providers()
                self._session = onnxruntime.InferenceSession(str(model), providers=providers)
        return self._session

    def _load_labels(self) -> list[WD14Label]:
        if self._labels is None:
            self._labels = read_wd14_labels(self.model_dir / WD14_TAGS_FILE)
        return self._labels


def read_wd14_labels(path: Path) -> list[WD14Label]:
    """Rows of ``selected_tags.csv`` (columns name and category are required)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return [WD14Label(row["name"], int(row["category"])) for row in rows]
    except (KeyError, ValueError, TypeError) as exc:
        raise TaggerError(
            f"{path}: expected columns 'name' and 'category' with whole-number categories ({exc})"
        ) from exc


def prepare_wd14_input(image: Image.Image, size: int) -> np.ndarray:
    """1 x size x size x 3 float32 BGR in 0..255: flattened on white, padded square, resized."""
    rgb = flatten(image, (255, 255, 255))
    side = max(rgb.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    square = square.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(square, dtype=np.float32)[:, :, ::-1]
    return np.ascontiguousarray(array[None])


def select_wd14_tags(probabilities: Sequence[float], labels: Sequence[WD14Label], options: WD14Options) -> list[str]:
    """General and character tags over their thresholds, most confident first (character tags
    first when asked), led by the highest-scoring rating tag when ``include_rating`` is on."""
    if len(probabilities) != len(labels):
        raise TaggerError(f"the model gives {len(probabilities)} scores but the tag list has {len(labels)} tags")
    character_threshold = options.threshold if options.character_threshold is None else options.character_threshold
    general, character, rating = [], [], []
    for score, label in zip(probabilities, labels):
        if label.category == WD14_CATEGORY_GENERAL and score >= options.threshold:
            general.append((float(score), label.name))
        elif label.category == WD14_CATEGORY_CHARACTER and score >= character_threshold:
            character.append((float(score), label.name))
        elif label.category == WD14_CATEGORY_RATING:
            rating.append((float(score), label.name))
    if options.character_tags_first:
        chosen = sorted(character, key=lambda pair: -pair[0]) + sorted(general, key=lambda pair: -pair[0])
    else:
        chosen = sorted(general + character, key=lambda pair: -pair[0])
    names = [name for _, name in chosen]
    if options.include_rating and rating:
        names.insert(0, max(rating, key=lambda pair: pair[0])[1])  # the first of equal scores
    excluded = set(options.exclude)
    tags = [_display(name, options.underscores_to_spaces) for name in names]
    return [t for t in tags if t not in excluded]


def _display(name: str, underscores_to_spaces: bool) -> str:
    if underscores_to_spaces and len(name) >= _KEEP_UNDERSCORE_BELOW:
        return name.replace("_", " ")
    return name


def _square_size(shape: Sequence[Any]) -> int:
    """The model's input side from its NHWC shape; dynamic dimensions fall back to 448."""
    height = shape[1] if len(shape) == 4 else None
    return height if isinstance(height, int) and height > 0 else WD14_DEFAULT_SIZE


def _fixed_batch(shape: Sequence[Any]) -> int | None:
    """The model's batch size when its NHWC input fixes one (WD v2 exports may), else None."""
    batch = shape[0] if len(shape) else None
    return batch if isinstance(batch, int) and batch > 0 else None


def _require(tagger: Tagger) -> None:
    state = tagger.availability()
    if not state.available:
        raise TaggerUnavailable(f"{tagger.name} is unavailable: {state.reason}. To use it: {state.install_hint}")
