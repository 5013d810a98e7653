"""SynNMM's language side: the gloss lexicon with its manual-sign parameters, the sentence set and
the rules that turn a gloss string plus its non-manual markers into an English text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------------------------
# Word pool. Each category is ordered by priority: a smaller lexicon keeps the first entries, so
# generic verbs and adjectives (which combine with every object) come first.
# --------------------------------------------------------------------------------------------

# gloss -> (noun phrase, grammatical person: "1", "2", "3" singular or "p" plural)
_SUBJECTS: dict[str, tuple[str, str]] = {
    "FRIEND": ("my friend", "3"),
    "ME": ("I", "1"),
    "MOTHER": ("my mother", "3"),
    "YOU": ("you", "2"),
    "TEACHER": ("the teacher", "3"),
    "THEY": ("they", "p"),
    "FATHER": ("my father", "3"),
    "SHE": ("she", "3"),
    "DOCTOR": ("the doctor", "3"),
    "WE": ("we", "p"),
    "BROTHER": ("my brother", "3"),
    "HE": ("he", "3"),
    "SISTER": ("my sister", "3"),
    "CHILD": ("the child", "3"),
}
# gloss -> (base, third person singular, past, object tag it needs, gradable)
_VERBS: dict[str, tuple[str, str, str, str, bool]] = {
    "LIKE": ("like", "likes", "liked", "any", True),
    "WANT": ("want", "wants", "wanted", "any", True),
    "SEE": ("see", "sees", "saw", "any", False),
    "BUY": ("buy", "buys", "bought", "any", False),
    "NEED": ("need", "needs", "needed", "any", True),
    "EAT": ("eat", "eats", "ate", "food", False),
    "DRINK": ("drink", "drinks", "drank", "drink", False),
    "READ": ("read", "reads", "read", "text", False),
    "BRING": ("bring", "brings", "brought", "any", False),
    "LOVE": ("love", "loves", "loved", "any", True),
    "OPEN": ("open", "opens", "opened", "open", False),
    "FIND": ("find", "finds", "found", "any", False),
    "SELL": ("sell", "sells", "sold", "thing", False),
    "WRITE": ("write", "writes", "wrote", "text", False),
    "TAKE": ("take", "takes", "took", "any", False),
    "WASH": ("wash", "washes", "washed", "wash", False),
    "MAKE": ("make", "makes", "made", "food", False),
    "CARRY": ("carry", "carries", "carried", "thing", False),
}
# gloss -> (noun, tags)
_OBJECTS: dict[str, tuple[str, frozenset[str]]] = {
    "BOOK": ("book", frozenset({"thing", "text", "open"})),
    "WATER": ("water", frozenset({"drink"})),
    "CAR": ("car", frozenset({"thing", "open", "wash"})),
    "BREAD": ("bread", frozenset({"food"})),
    "PHONE": ("phone", frozenset({"thing"})),
    "COFFEE": ("coffee", frozenset({"drink"})),
    "LETTER": ("letter", frozenset({"thing", "text", "open"})),
    "HOUSE": ("house", frozenset({"thing", "wash"})),
    "APPLE": ("apple", frozenset({"food"})),
    "BAG": ("bag", frozenset({"thing", "open", "wash"})),
    "TEA": ("tea", frozenset({"drink"})),
    "DOOR": ("door", frozenset({"thing", "open", "wash"})),
    "CUP": ("cup", frozenset({"thing", "wash"})),
    "RICE": ("rice", frozenset({"food"})),
    "BALL": ("ball", frozenset({"thing"})),
    "SHIRT": ("shirt", frozenset({"thing", "wash"})),
    "MILK": ("milk", frozenset({"drink"})),
    "MONEY": ("money", frozenset({"thing"})),
    "CAKE": ("cake", frozenset({"food"})),
}
# gloss -> (adjective, object tags it fits)
_ADJECTIVES: dict[str, tuple[str, frozenset[str]]] = {
    "GOOD": ("good", frozenset({"thing", "food", "drink", "text"})),
    "BIG": ("big", frozenset({"thing", "food"})),
    "HOT": ("hot", frozenset({"food", "drink"})),
    "NEW": ("new", frozenset({"thing", "text"})),
    "SMALL": ("small", frozenset({"thing", "food"})),
    "COLD": ("cold", frozenset({"food", "drink"})),
    "OLD": ("old", frozenset({"thing", "text"})),
    "RED": ("red", frozenset({"thing", "food"})),
    "EXPENSIVE": ("expensive", frozenset({"thing", "food", "drink"})),
    "FRESH": ("fresh", frozenset({"food", "drink"})),
    "CHEAP": ("cheap", frozenset({"thing", "food", "drink"})),
    "LONG": ("long", frozenset({"text"})),
    "CLEAN": ("clean", frozenset({"thing", "drink"})),
    "BEAUTIFUL": ("beautiful", frozenset({"thing"})),
}
# gloss -> (phrase, tense: "present", "past" or "future")
_TIMES: dict[str, tuple[str, str]] = {
    "TODAY": ("today", "present"),
    "YESTERDAY": ("yesterday", "past"),
    "TOMORROW": ("tomorrow", "future"),
    "NOW": ("now", "present"),
    "MORNING": ("in the morning", "present"),
    "TONIGHT": ("tonight", "future"),
}
_PLACES: dict[str, str] = {
    "HOME": "at home",
    "SCHOOL": "at school",
    "MARKET": "at the market",
    "WORK": "at work",
    "HOSPITAL": "at the hospital",
    "PARK": "in the park",
}
_COMPANIONS = ("FRIEND", "MOTHER", "TEACHER", "FATHER", "DOCTOR", "BROTHER", "SISTER", "CHILD")

CATEGORIES: tuple[str, ...] = ("subject", "verb", "object", "adjective", "time", "place", "with")
_POOL: dict[str, list[str]] = {
    "subject": list(_SUBJECTS),
    "verb": list(_VERBS),
    "object": list(_OBJECTS),
    "adjective": list(_ADJECTIVES),
    "time": list(_TIMES),
    "place": list(_PLACES),
    "with": ["WITH"],
}
MIN_GLOSSES = 16
MAX_GLOSSES = sum(len(words) for words in _POOL.values())

# --------------------------------------------------------------------------------------------
# Manual-sign building blocks (right-dominant signer; body units: metres from the neck, x towards
# the image right = the signer's left, y down).
# --------------------------------------------------------------------------------------------

# Hand configuration vector: curl of thumb, index, middle, ring, pinky (0 straight .. 1 fist),
# spread (0 together .. 1 apart), thumb opposition (0 beside the palm .. 1 across it),
# knuckle bend (extra flexion at the base joints only), hook (extra flexion at the two outer
# joints only).
HAND_PARAMS = 9
HANDSHAPES: dict[str, tuple[float, ...]] = {
    "B": (0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.0, 0.0),
    "5": (0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
    "A": (0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0),
    "S": (0.7, 1.0, 1.0, 1.0, 1.0, 0.0, 0.9, 0.0, 0.0),
    "1": (0.7, 0.0, 1.0, 1.0, 1.0, 0.0, 0.9, 0.0, 0.0),
    "V": (0.7, 0.0, 0.0, 1.0, 1.0, 1.0, 0.9, 0.0, 0.0),
    "W": (0.7, 0.0, 0.0, 0.0, 1.0, 1.0, 0.9, 0.0, 0.0),
    "Y": (0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0),
    "L": (0.0, 0.0, 1.0, 1.0, 1.0, 0.2, 0.0, 0.0, 0.0),
    "I": (0.7, 1.0, 1.0, 1.0, 0.0, 0.0, 0.9, 0.0, 0.0),
    "C": (0.2, 0.4, 0.4, 0.4, 0.4, 0.0, 0.4, 0.0, 0.0),
    "O": (0.5, 0.65, 0.65, 0.65, 0.65, 0.0, 1.0, 0.0, 0.0),
    "bentB": (0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 1.0, 0.0),
    "claw": (0.3, 0.0, 0.0, 0.0, 0.0, 1.0, 0.3, 0.0, 1.0),
    "horns": (0.7, 0.0, 1.0, 1.0, 0.0, 0.8, 0.9, 0.0, 0.0),
    "3": (0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0),
    "X": (0.7, 0.0, 1.0, 1.0, 1.0, 0.0, 0.9, 0.0, 1.0),
    "4": (0.9, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0),
}
RELAXED_HAND = (0.3, 0.35, 0.4, 0.45, 0.5, 0.3, 0.2, 0.0, 0.0)

# Hand orientation (degrees): finger direction in the image plane (0 = up, positive turns towards
# the body midline), rotation of the palm about the finger axis (0 = palm to camera, 180 = back of
# the hand to camera), tilt of the fingers towards the camera.
ORIENTATIONS: dict[str, tuple[float, float, float]] = {
    "up_palm_front": (0.0, 0.0, 0.0),
    "up_palm_side": (0.0, 80.0, 0.0),
    "forward_palm_down": (0.0, 160.0, 65.0),
    "in_palm_front": (80.0, 0.0, 0.0),
    "up_palm_back": (0.0, 180.0, 0.0),
    "diagonal": (45.0, 40.0, 0.0),
    "down_palm_front": (170.0, 0.0, 0.0),
    "forward_palm_up": (0.0, 0.0, 65.0),
}
REST_ORIENTATION = (160.0, 80.0, 0.0)

# Dominant-wrist locations (x, y) in body units.
LOCATIONS: dict[str, tuple[float, float]] = {
    "forehead": (-0.03, -0.24),
    "temple": (-0.12, -0.19),
    "chin": (-0.01, -0.07),
    "cheek": (-0.10, -0.11),
    "chest": (-0.01, 0.12),
    "chest_side": (-0.13, 0.09),
    "other_shoulder": (0.13, 0.03),
    "neutral": (-0.12, 0.23),
    "neutral_high": (-0.2, -0.02),
    "side": (-0.3, 0.14),
    "low": (-0.04, 0.31),
    "centre": (0.02, 0.2),
}
REST_WRIST = (-0.15, 0.42)
BASE_HAND_WRIST = (0.07, 0.22)  # the non-dominant "base" hand of two-handed signs

MOVEMENTS: tuple[str, ...] = (
    "hold",
    "down",
    "up",
    "out",
    "in",
    "circle",
    "tap",
    "wiggle",
    "arc",
    "diagonal",
)
# two-handed types: the non-dominant hand rests, mirrors the dominant one, or holds a flat base
TWO_HANDED: tuple[str, ...] = ("one", "mirror", "base")

TABLE_STEPS = 33  # samples of the phase u in [0, 1] per gloss trajectory table
# manual state per frame: for the dominant then the non-dominant hand, wrist (x, y),
# orientation (3 angles) and hand configuration (HAND_PARAMS)
HAND_STATE = 2 + 3 + HAND_PARAMS
MANUAL_STATE = 2 * HAND_STATE


@dataclass(frozen=True)
class Gloss:
    """One lexicon entry: its category and the parameters of its manual sign."""

    name: str
    category: str
    handshape: str
    end_handshape: str
    orientation: str
    location: str
    movement: str
    two_handed: str
    amplitude: float  # movement size in body units
    duration_s: float  # typical duration of the sign itself, at speed 1


@dataclass(frozen=True)
class Sentence:
    """A gloss string with the grammatical information its texts are built from."""

    index: int
    glosses: tuple[str, ...]
    roles: tuple[str, ...]  # category of each gloss position ("subject", "verb", ...)

    @property
    def gloss(self) -> str:
        return " ".join(self.glosses)

    def position(self, role: str) -> int:
        """Position of the first gloss with this role, or -1."""
        return self.roles.index(role) if role in self.roles else -1

    def intensifier_target(self) -> int:
        """Position of the gloss an intensifier scopes over: the adjective, else a gradable verb."""
        adjective = self.position("adjective")
        if adjective >= 0:
            return adjective
        verb = self.position("verb")
        return verb if _VERBS[self.glosses[verb]][4] else -1

    def negation_span(self) -> tuple[int, int]:
        """Gloss positions [first, last] a head shake scopes over: the verb and what follows it."""
        return self.position("verb"), len(self.glosses) - 1

    def text(
        self, question: bool = False, negation: bool = False, intensifier: bool = False
    ) -> str:
        """The English text of this gloss string under the given non-manual markers."""
        return render_text(self, question=question, negation=negation, intensifier=intensifier)


@dataclass
class Lexicon:
    """The glosses in use, by name, with their categories."""

    glosses: list[Gloss]
    by_name: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {g.name: i for i, g in enumerate(self.glosses)}

    def __len__(self) -> int:
        return len(self.glosses)

    def names(self, category: str | None = None) -> list[str]:
        return [g.name for g in self.glosses if category is None or g.category == category]


def _pick_words(n_glosses: int) -> list[tuple[str, str]]:
    """The first n words of the pool, taken from each category in proportion to its size."""
    if not MIN_GLOSSES <= n_glosses <= MAX_GLOSSES:
        raise ValueError(f"n_glosses must be in [{MIN_GLOSSES}, {MAX_GLOSSES}], got {n_glosses}")
    keyed = []
    for category in CATEGORIES:
        words = _POOL[category]
        for rank, word in enumerate(words):
            # "with" is needed by any sentence that names a companion: it always comes first
            key = -1.0 if category == "with" else (rank + 0.5) / len(words)
            keyed.append((key, CATEGORIES.index(category), word, category))
    keyed.sort()
    return [(word, category) for _, _, word, category in keyed[:n_glosses]]


def _distinct_enough(a: tuple, b: tuple) -> bool:
    """Two signs must differ in two of (handshape, location, movement), or in one of them and in
    two of (orientation, two-handedness, end handshape)."""
    major = sum(x != y for x, y in zip(a[:3], b[:3], strict=True))
    minor = sum(x != y for x, y in zip(a[3:], b[3:], strict=True))
    return major >= 2 or (major == 1 and minor >= 2)


def build_lexicon(n_glosses: int, rng: np.random.Generator) -> Lexicon:
    """Draw a manual sign for each of `n_glosses` words, all pairwise clearly distinct."""
    words = _pick_words(n_glosses)
    shapes, locations, orientations = list(HANDSHAPES), list(LOCATIONS), list(ORIENTATIONS)
    accepted: list[tuple] = []
    glosses = []
    for name, category in words:
        for _ in range(10_000):
            handshape = shapes[rng.integers(len(shapes))]
            location = locations[rng.integers(len(locations))]
            movement = MOVEMENTS[rng.integers(len(MOVEMENTS))]
            orientation = orientations[rng.integers(len(orientations))]
            two_handed = TWO_HANDED[rng.choice(3, p=[0.6, 0.25, 0.15])]
            end_handshape = handshape
            if rng.random() < 0.2:
                end_handshape = shapes[rng.integers(len(shapes))]
            if movement == "hold" and end_handshape == handshape:
                movement = "tap"  # every sign moves something
            key = (handshape, location, movement, orientation, two_handed, end_handshape)
            if all(_distinct_enough(key, other) for other in accepted):
                break
        else:  # pragma: no cover - the space holds thousands of signs
            raise RuntimeError("could not draw a distinct sign; lower n_glosses")
        accepted.append(key)
        glosses.append(
            Gloss(
                name=name,
                category=category,
                handshape=handshape,
                end_handshape=end_handshape,
                orientation=orientation,
                location=location,
                movement=movement,
                two_handed=two_handed,
                amplitude=float(rng.uniform(0.07, 0.11)),
                duration_s=float(rng.uniform(0.45, 0.62)),
            )
        )
    return Lexicon(glosses)


def _movement_offsets(movement: str, amplitude: float, u: np.ndarray) -> np.ndarray:
    """Dominant-wrist offsets [len(u), 2] along a movement, for the phase u in [0, 1]."""
    s = u * u * (3.0 - 2.0 * u)
    zero = np.zeros_like(u)
    a = amplitude
    if movement == "hold":
        dx, dy = zero, zero
    elif movement == "down":
        dx, dy = zero, a * s
    elif movement == "up":
        dx, dy = zero, -a * s
    elif movement == "out":
        dx, dy = -a * s, zero
    elif movement == "in":
        dx, dy = a * s, zero
    elif movement == "circle":
        dx, dy = 0.5 * a * (np.cos(2 * np.pi * u) - 1.0), 0.5 * a * np.sin(2 * np.pi * u)
    elif movement == "tap":
        dx, dy = zero, 0.35 * a * (1.0 - np.cos(4 * np.pi * u))
    elif movement == "wiggle":
        dx, dy = 0.45 * a * np.sin(4 * np.pi * u), zero
    elif movement == "arc":
        dx, dy = -a * s, -0.6 * a * np.sin(np.pi * u)
    elif movement == "diagonal":
        dx, dy = -0.75 * a * s, 0.75 * a * s
    else:
        raise ValueError(f"unknown movement {movement!r}")
    return np.stack([dx, dy], axis=-1)


def trajectory_table(lexicon: Lexicon) -> np.ndarray:
    """Manual state along every sign: [G + 1, TABLE_STEPS, MANUAL_STATE] float64.

    Row G is the rest pose. Columns per hand (dominant first): wrist x, y (body units),
    orientation (3 angles, degrees), hand configuration (HAND_PARAMS).
    """
    n = len(lexicon)
    u = np.linspace(0.0, 1.0, TABLE_STEPS)
    s = (u * u * (3.0 - 2.0 * u))[:, None]
    table = np.zeros((n + 1, TABLE_STEPS, MANUAL_STATE))
    h = HAND_STATE
    for i, g in enumerate(lexicon.glosses):
        start = np.array(HANDSHAPES[g.handshape])
        end = np.array(HANDSHAPES[g.end_handshape])
        hand = start + (end - start) * s
        orientation = np.array(ORIENTATIONS[g.orientation])
        location = np.array(LOCATIONS[g.location])
        if g.two_handed == "base":
            # the dominant hand acts on a flat non-dominant palm held in front of the body
            location = np.array(BASE_HAND_WRIST) + np.array([-0.05, -0.09])
        wrist = location + _movement_offsets(g.movement, g.amplitude, u)
        dom = table[i, :, :h]
        dom[:, 0:2] = wrist
        dom[:, 2:5] = orientation
        dom[:, 5:] = hand
        other = table[i, :, h:]
        if g.two_handed == "mirror":
            other[:, 0] = -wrist[:, 0]
            other[:, 1] = wrist[:, 1]
            other[:, 2:5] = orientation
            other[:, 5:] = hand
        elif g.two_handed == "base":
            other[:, 0:2] = BASE_HAND_WRIST
            other[:, 2:5] = ORIENTATIONS["forward_palm_up"]
            other[:, 5:] = HANDSHAPES["B"]
        else:
            other[:, 0] = -REST_WRIST[0]
            other[:, 1] = REST_WRIST[1]
            other[:, 2:5] = REST_ORIENTATION
            other[:, 5:] = RELAXED_HAND
    rest = table[n]
    for offset, x in ((0, REST_WRIST[0]), (h, -REST_WRIST[0])):
        rest[:, offset] = x
        rest[:, offset + 1] = REST_WRIST[1]
        rest[:, offset + 2 : offset + 5] = REST_ORIENTATION
        rest[:, offset + 5 : offset + h] = RELAXED_HAND
    return table


# --------------------------------------------------------------------------------------------
# Sentences and texts
# --------------------------------------------------------------------------------------------

_OPTIONAL_RATES = {"time": 0.6, "adjective": 0.5, "place": 0.4, "with": 0.25}


def build_sentences(
    lexicon: Lexicon,
    n_sentences: int,
    rng: np.random.Generator,
    *,
    min_glosses: int = 3,
    max_glosses: int = 7,
    min_uses: int = 3,
) -> list[Sentence]:
    """Draw `n_sentences` distinct gloss strings of `min_glosses`..`max_glosses` signs.

    Gloss order: [TIME] SUBJECT VERB OBJECT [ADJECTIVE] [PLACE] [WITH PERSON]. Rarely used glosses
    are preferred, so that every gloss occurs in at least `min_uses` sentences whenever
    `n_sentences` allows it; an unseen-sentence test set can then be made of new combinations of
    glosses that all occur in training.
    """
    if not 3 <= min_glosses <= max_glosses <= 8:
        raise ValueError(
            f"need 3 <= min_glosses <= max_glosses <= 8, got {min_glosses}, {max_glosses}"
        )
    names = {c: lexicon.names(c) for c in CATEGORIES}
    uses = {g.name: 0 for g in lexicon.glosses}
    companions = [w for w in _COMPANIONS if w in lexicon.by_name]
    has_with = bool(names["with"]) and bool(companions)

    def pick(candidates: list[str], exclude: tuple[str, ...] = ()) -> str:
        options = [c for c in candidates if c not in exclude]
        weights = np.array([1.0 / (1.0 + uses[c]) ** 2 for c in options])
        return options[rng.choice(len(options), p=weights / weights.sum())]

    seen: set[tuple[str, ...]] = set()
    sentences: list[Sentence] = []
    attempts = 0
    while len(sentences) < n_sentences:
        attempts += 1
        if attempts > 200 * n_sentences + 10_000:
            raise ValueError(
                f"cannot draw {n_sentences} distinct sentences from {len(lexicon)} glosses"
            )
        want = {k: rng.random() < p for k, p in _OPTIONAL_RATES.items()}
        want["with"] = want["with"] and has_with
        want["time"] = want["time"] and bool(names["time"])
        want["place"] = want["place"] and bool(names["place"])
        length = 3 + want["time"] + want["adjective"] + want["place"] + 2 * want["with"]
        if not min_glosses <= length <= max_glosses:
            continue
        subject = pick(names["subject"])
        verb = pick(names["verb"])
        need = _VERBS[verb][3]
        objects = [o for o in names["object"] if need == "any" or need in _OBJECTS[o][1]]
        if not objects:
            continue
        obj = pick(objects)
        parts: list[tuple[str, str]] = []
        if want["time"]:
            parts.append((pick(names["time"]), "time"))
        parts += [(subject, "subject"), (verb, "verb"), (obj, "object")]
        if want["adjective"]:
            adjectives = [a for a in names["adjective"] if _ADJECTIVES[a][1] & _OBJECTS[obj][1]]
            if not adjectives:
                continue
            parts.append((pick(adjectives), "adjective"))
        if want["place"]:
            parts.append((pick(names["place"]), "place"))
        if want["with"]:
            parts.append(("WITH", "with"))
            parts.append((pick(companions, exclude=(subject,)), "companion"))
        glosses = tuple(p[0] for p in parts)
        if glosses in seen:
            continue
        seen.add(glosses)
        for g in glosses:
            uses[g] += 1
        sentences.append(Sentence(len(sentences), glosses, tuple(p[1] for p in parts)))
    rare = [g for g, n in uses.items() if n < min(min_uses, n_sentences // 20 + 1)]
    if rare:
        raise ValueError(f"glosses used in too few sentences: {rare}; raise n_sentences")
    return sentences


def render_text(
    sentence: Sentence, *, question: bool = False, negation: bool = False, intensifier: bool = False
) -> str:
    """English text of a gloss string under its non-manual markers.

    A yes/no question fronts do/does/did/will and ends in "?"; negation adds "not"; an intensifier
    adds "very" before the adjective (or "very much" after a gradable verb's object).
    """
    by_role = {}
    for gloss, role in zip(sentence.glosses, sentence.roles, strict=True):
        by_role.setdefault(role, gloss)
    subject_np, person = _SUBJECTS[by_role["subject"]]
    base, third, past, _, _ = _VERBS[by_role["verb"]]
    tense = _TIMES[by_role["time"]][1] if "time" in by_role else "present"
    target = sentence.intensifier_target()
    if intensifier and target < 0:
        raise ValueError(f"sentence {sentence.gloss!r} has nothing an intensifier can scope over")
    intense_role = sentence.roles[target] if intensifier else ""

    if tense == "past":
        auxiliary, finite = "did", past
    elif tense == "future":
        auxiliary, finite = "will", "will " + base
    else:
        auxiliary = "does" if person == "3" else "do"
        finite = third if person == "3" else base
    if question:
        words = [auxiliary, subject_np] + (["not"] if negation else []) + [base]
    elif negation:
        words = [subject_np, auxiliary, "not", base]
    else:
        words = [subject_np, finite]

    noun = _OBJECTS[by_role["object"]][0]
    object_np = ["the"]
    if "adjective" in by_role:
        object_np += (["very"] if intense_role == "adjective" else []) + [
            _ADJECTIVES[by_role["adjective"]][0]
        ]
    object_np.append(noun)
    words += object_np
    if intense_role == "verb":
        words += ["very", "much"]
    if "place" in by_role:
        words.append(_PLACES[by_role["place"]])
    if "companion" in by_role:
        words += ["with", _SUBJECTS[by_role["companion"]][0]]
    if "time" in by_role:
        words.append(_TIMES[by_role["time"]][0])
    text = " ".join(words)
    text = text[0].upper() + text[1:]
    return text + ("?" if question else ".")
