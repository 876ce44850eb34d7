"""Synthetic multimodal search logs: the embedded default's data.

The generative model (frozen when the foundation landed; later work must not tune it to flatter a
method):

* Topics. `n_topics` topics, each with its own keyword vocabulary (disjoint across topics).
* Queries. Each query has a topic, 2-3 of its keywords, and an *intent modality* (web, image,
  video or answer) spelled in the text ("photos of ...", "... video", "what is ..."; web has no
  marker). Query popularity is Zipfian.
* Items. Web, image and video items come from a catalogue: each has a topic, 2-4 keywords of it,
  a latent quality ~ N(0, 1), titles and bodies built from its keywords and modality templates,
  engagement counters (impressions ~ Poisson(popularity), clicks ~ Binomial(CTR(quality))). Image and
  video items carry a 32-d visual embedding = 0.8 * topic direction + 0.4 * quality * quality
  direction + N(0, 0.35^2) noise. LLM answers are generated per query from its keywords, with their own
  quality.
* Candidates. Each query has a fixed candidate list per modality (web 16, image 8, video 6,
  answer 2 by default): 55% drawn from the query's topic, the rest from other topics' items.
* Hidden truth. latent = 1.8 * same_topic + 1.2 * keyword_overlap + 0.5 * quality
  + intent_bonus + N(0, 0.4^2), where intent_bonus = +0.9 for items of the query's intent
  modality, -0.3 for others (and -0.6 for answers to non-answer queries). grade =
  number of thresholds (0.8, 1.6, 2.4, 3.2) below latent, so 0-4. Stored only in
  `truth.relevance`.
* Production single-modal scores. Each modality's production ranker sees a noisier, intent-blind
  signal s = same_topic + overlap + 0.3 * quality + N(0, 0.6^2), reported on its own scale:
  web BM25-like 10 + 6s + N(0, 2^2); image probability sigmoid(1.2s - 1.5); video logit
  2s - 2 + N(0, 0.5^2); answer confidence clip(40 + 25s, 0, 100). Raw fusion across modalities is
  therefore miscalibrated by construction: the problem SMAR solves.
* Production page. Answers with confidence > 60 go on top; the rest of the page follows a fixed
  slot template (web, web, image, web, video, web, image, web, web, video, ...) filled from each
  modality's production order; remaining items are appended. 5% of requests are exploration
  traffic: their page is shown in a uniformly random order (so position bias is identifiable).
* Users and clicks. Users have a modality affinity (Dirichlet(2,2,2,2)) and categorical features.
  Clicks follow a position-based model: P(click) = examination(position) * attractiveness, with
  examination = position^-0.8 and attractiveness = (0.03, 0.10, 0.25, 0.50, 0.75)[grade] *
  exp(0.6 * (affinity[modality] - 0.25)), capped at 0.95. Dwell after a click is
  lognormal(log 8 + 0.5 * grade, 0.5) seconds, so long dwell signals relevance.

Everything is seeded: the catalogue, queries and users depend on `seed` only; a day's requests
and clicks on (`seed`, `ds`). The same (size, seed, ds) always gives identical tables.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa

from smar.config import FrozenConfig
from smar.contracts import load_contract
from smar.vocabulary import MODALITIES

VISUAL_EMBEDDING_DIM = 32
GRADE_THRESHOLDS = (0.8, 1.6, 2.4, 3.2)
ATTRACTIVENESS_BY_GRADE = (0.03, 0.10, 0.25, 0.50, 0.75)
EXAMINATION_EXPONENT = 0.8
PAGE_SLOT_TEMPLATE = ("web", "web", "image", "web", "video", "web", "image", "web", "web", "video")

SizeName = Literal["tiny", "demo", "large"]

# fmt: off
TOPIC_VOCABULARY: dict[str, tuple[str, ...]] = {
    "hiking": ("hiking", "trail", "boots", "mountain", "backpack", "summit", "camping", "tent", "compass", "waterfall"),
    "baking": ("bread", "sourdough", "oven", "flour", "yeast", "cake", "pastry", "butter", "dough", "croissant"),
    "python": ("python", "programming", "function", "library", "debugging", "script", "pandas", "decorator", "module", "typing"),
    "gardening": ("garden", "tomato", "compost", "seedling", "pruning", "soil", "roses", "watering", "greenhouse", "mulch"),
    "astronomy": ("telescope", "galaxy", "nebula", "planet", "eclipse", "comet", "orbit", "constellation", "meteor", "saturn"),
    "cycling": ("bicycle", "cycling", "gears", "helmet", "saddle", "tyre", "peloton", "climb", "chain", "derailleur"),
    "coffee": ("coffee", "espresso", "grinder", "latte", "roast", "barista", "beans", "crema", "aeropress", "brew"),
    "guitar": ("guitar", "chords", "strings", "fretboard", "amplifier", "riff", "tuning", "acoustic", "pick", "solo"),
    "finance": ("budget", "savings", "mortgage", "interest", "investing", "pension", "stocks", "inflation", "loan", "dividend"),
    "fitness": ("workout", "squat", "protein", "stretching", "cardio", "muscle", "deadlift", "treadmill", "plank", "yoga"),
    "photography": ("camera", "lens", "aperture", "shutter", "tripod", "portrait", "exposure", "sensor", "flash", "zoom"),
    "travel": ("flight", "passport", "hotel", "luggage", "itinerary", "beach", "museum", "visa", "hostel", "airport"),
    "cats": ("kitten", "cat", "litter", "whiskers", "purring", "catnip", "scratching", "tabby", "grooming", "feline"),
    "chess": ("chess", "opening", "gambit", "checkmate", "bishop", "knight", "endgame", "castling", "pawn", "rook"),
    "climate": ("climate", "emissions", "carbon", "glacier", "drought", "renewable", "solar", "warming", "wildfire", "methane"),
    "cars": ("engine", "brakes", "gearbox", "battery", "tyres", "diesel", "hybrid", "suspension", "clutch", "exhaust"),
    "painting": ("watercolor", "canvas", "brush", "acrylic", "palette", "sketch", "easel", "pigment", "landscape", "oil"),
    "medicine": ("fever", "vaccine", "antibiotic", "allergy", "migraine", "blood", "pressure", "symptoms", "dosage", "clinic"),
    "history": ("empire", "castle", "revolution", "medieval", "pharaoh", "dynasty", "treaty", "knights", "roman", "archive"),
    "cooking": ("pasta", "risotto", "curry", "garlic", "saucepan", "noodles", "spices", "stirfry", "broth", "dumplings"),
    "smartphones": ("smartphone", "battery", "charger", "screen", "android", "iphone", "camera", "storage", "update", "case"),
    "birds": ("birds", "sparrow", "owl", "feathers", "nest", "migration", "eagle", "binoculars", "songbird", "heron"),
    "football": ("football", "goalkeeper", "penalty", "striker", "league", "offside", "stadium", "tactics", "midfield", "derby"),
    "knitting": ("knitting", "yarn", "needles", "sweater", "stitch", "wool", "scarf", "pattern", "crochet", "mittens"),
    "architecture": ("building", "facade", "concrete", "cathedral", "skyscraper", "bridge", "arches", "blueprint", "timber", "dome"),
    "wine": ("wine", "vineyard", "merlot", "tannins", "sommelier", "cork", "decanter", "riesling", "harvest", "cellar"),
    "skiing": ("skiing", "slope", "snowboard", "powder", "lift", "goggles", "avalanche", "resort", "bindings", "moguls"),
    "aquarium": ("aquarium", "goldfish", "filter", "coral", "algae", "tank", "guppy", "reef", "heater", "plants"),
    "robots": ("robot", "sensor", "actuator", "servo", "arduino", "drone", "lidar", "gripper", "firmware", "motor"),
    "tea": ("tea", "matcha", "oolong", "teapot", "infusion", "chamomile", "kettle", "leaves", "jasmine", "steeping"),
}
# fmt: on

INTENT_PREFIXES: dict[str, tuple[str, ...]] = {
    "web": ("", "best", "guide to", "reviews"),
    "image": ("photos of", "pictures of", "images of"),
    "video": ("video", "how to video", "watch"),
    "answer": ("what is", "why", "explain"),
}

TITLE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "web": (
        "{kw} guide",
        "the complete {kw} handbook",
        "{kw}: tips and reviews",
        "{kw} explained",
        "everything about {kw}",
    ),
    "image": ("photo of {kw}", "{kw} picture gallery", "close-up image: {kw}"),
    "video": ("{kw} video tutorial", "watch: {kw} in 5 minutes", "{kw} vlog"),
    "answer": ("Answer: {kw}",),
}

BODY_FILLER = (
    "simple",
    "useful",
    "popular",
    "detailed",
    "beginner",
    "advanced",
    "classic",
    "modern",
    "quick",
    "honest",
)


class GeneratorConfig(FrozenConfig):
    """Sizes of one synthetic world. Use `GeneratorConfig.preset(name)`; defaults are frozen."""

    n_topics: int
    n_queries: int
    n_users: int
    requests_per_day: int
    catalogue_items_per_topic: tuple[int, int, int]  # web, image, video
    candidates_per_modality: tuple[int, int, int, int]  # web, image, video, answer
    on_topic_fraction: float = 0.55
    exploration_fraction: float = 0.05  # requests whose page is shown in a uniformly random order

    @staticmethod
    def preset(size: SizeName) -> GeneratorConfig:
        if size == "tiny":
            return GeneratorConfig(
                n_topics=6, n_queries=40, n_users=50, requests_per_day=60,
                catalogue_items_per_topic=(12, 8, 6), candidates_per_modality=(6, 4, 3, 2),
            )  # fmt: skip
        if size == "demo":
            return GeneratorConfig(
                n_topics=24, n_queries=800, n_users=2_000, requests_per_day=1_200,
                catalogue_items_per_topic=(40, 25, 20), candidates_per_modality=(16, 8, 6, 2),
            )  # fmt: skip
        if size == "large":
            return GeneratorConfig(
                n_topics=30, n_queries=20_000, n_users=50_000, requests_per_day=31_250,
                catalogue_items_per_topic=(400, 250, 200), candidates_per_modality=(16, 8, 6, 2),
            )  # fmt: skip
        raise ValueError(f"unknown size {size!r}; use tiny, demo or large")

    @property
    def page_length(self) -> int:
        return sum(self.candidates_per_modality)


@dataclass(frozen=True)
class GeneratedDay:
    """One day of synthetic data as Arrow tables shaped like the bronze/truth contracts."""

    ds: str
    search_logs: pa.Table
    items: pa.Table
    users: pa.Table
    relevance: pa.Table


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class _World:
    """The seed-only part: topics, catalogue, queries, candidate lists, users."""

    config: GeneratorConfig
    topic_names: list[str]
    # catalogue items (web/image/video) then per-query answers, all in flat arrays
    item_ids: np.ndarray
    item_modality: np.ndarray  # index into MODALITIES
    item_topic: np.ndarray
    item_keyword_mask: np.ndarray  # bitmask over the topic's 10 keywords
    item_quality: np.ndarray
    item_title: list[str]
    item_body: list[str]
    item_visual: np.ndarray  # [n_items, 32], NaN rows for text modalities
    item_impressions: np.ndarray
    item_clicks: np.ndarray
    item_likes: np.ndarray
    item_shares: np.ndarray
    query_ids: np.ndarray
    query_text: list[str]
    query_topic: np.ndarray
    query_keyword_mask: np.ndarray
    query_intent: np.ndarray
    query_popularity: np.ndarray
    # per query, the page: [n_queries, page_length]
    page_item: np.ndarray
    page_grade: np.ndarray
    page_production_score: np.ndarray
    user_ids: np.ndarray
    user_gender: np.ndarray
    user_age: np.ndarray
    user_platform: np.ndarray
    user_affinity: np.ndarray  # [n_users, 4]
    user_activity: np.ndarray
    user_weight: np.ndarray


def _keywords(topic: str, mask: int) -> list[str]:
    vocabulary = TOPIC_VOCABULARY[topic]
    return [word for bit, word in enumerate(vocabulary) if mask >> bit & 1]


def _random_mask(rng: np.random.Generator, low: int, high: int) -> int:
    count = int(rng.integers(low, high + 1))
    bits = rng.choice(10, size=count, replace=False)
    return int(sum(1 << int(b) for b in bits))


def build_world(config: GeneratorConfig, seed: int) -> _World:
    """Everything that depends on the seed only (catalogue, queries, candidates, users)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    if config.n_topics > len(TOPIC_VOCABULARY):
        raise ValueError(f"at most {len(TOPIC_VOCABULARY)} topics are available")
    topic_names = list(TOPIC_VOCABULARY)[: config.n_topics]
    topic_direction = rng.normal(size=(config.n_topics, VISUAL_EMBEDDING_DIM))
    topic_direction /= np.linalg.norm(topic_direction, axis=1, keepdims=True)
    quality_direction = rng.normal(size=VISUAL_EMBEDDING_DIM)
    quality_direction /= np.linalg.norm(quality_direction)

    ids: list[str] = []
    modality: list[int] = []
    topic: list[int] = []
    masks: list[int] = []
    titles: list[str] = []
    bodies: list[str] = []
    for modality_index, per_topic in enumerate(config.catalogue_items_per_topic):
        name = MODALITIES[modality_index]
        for topic_index, topic_name in enumerate(topic_names):
            for serial in range(per_topic):
                mask = _random_mask(rng, 2, 4)
                words = _keywords(topic_name, mask)
                rng.shuffle(words)
                template = TITLE_TEMPLATES[name][int(rng.integers(len(TITLE_TEMPLATES[name])))]
                filler = BODY_FILLER[int(rng.integers(len(BODY_FILLER)))]
                ids.append(f"{name[0]}{topic_index:02d}{serial:04d}")
                modality.append(modality_index)
                topic.append(topic_index)
                masks.append(mask)
                titles.append(template.format(kw=" ".join(words[:2])))
                bodies.append(f"A {filler} look at {', '.join(words)} for {topic_name} fans.")
    n_catalogue = len(ids)

    # Queries: topic, keywords, intent (web-heavy, like real traffic).
    query_topic = rng.integers(0, config.n_topics, size=config.n_queries)
    query_intent = rng.choice(4, size=config.n_queries, p=[0.4, 0.2, 0.2, 0.2])
    query_masks = np.array([_random_mask(rng, 2, 3) for _ in range(config.n_queries)], dtype=np.int64)
    query_text: list[str] = []
    for q in range(config.n_queries):
        words = _keywords(topic_names[query_topic[q]], int(query_masks[q]))
        rng.shuffle(words)
        prefixes = INTENT_PREFIXES[MODALITIES[query_intent[q]]]
        prefix = prefixes[int(rng.integers(len(prefixes)))]
        query_text.append(" ".join(part for part in (prefix, " ".join(words)) if part))
    query_ids = np.array([f"q{q:06d}" for q in range(config.n_queries)])
    query_popularity = 1.0 / np.arange(1, config.n_queries + 1) ** 1.1
    query_popularity = rng.permutation(query_popularity)
    query_popularity /= query_popularity.sum()

    # LLM answers: generated per query from its own keywords.
    n_answers = config.candidates_per_modality[3]
    for q in range(config.n_queries):
        for serial in range(n_answers):
            keep = int(query_masks[q])
            if rng.random() < 0.5:  # some answers miss a keyword
                bits = [b for b in range(10) if keep >> b & 1]
                keep &= ~(1 << int(rng.choice(bits)))
            words = _keywords(topic_names[query_topic[q]], keep) or [topic_names[query_topic[q]]]
            ids.append(f"a{q:06d}{serial}")
            modality.append(3)
            topic.append(int(query_topic[q]))
            masks.append(keep)
            titles.append(f"Answer: {' '.join(words)}")
            bodies.append(f"In short, {' and '.join(words)} depend on a few {topic_names[query_topic[q]]} basics.")

    item_modality = np.array(modality)
    item_topic = np.array(topic)
    item_mask = np.array(masks, dtype=np.int64)
    n_items = len(ids)
    item_quality = rng.normal(size=n_items)
    visual = np.full((n_items, VISUAL_EMBEDDING_DIM), np.nan, dtype=np.float32)
    is_visual = (item_modality == 1) | (item_modality == 2)
    visual[is_visual] = (
        0.8 * topic_direction[item_topic[is_visual]]
        + 0.4 * item_quality[is_visual, None] * quality_direction
        + rng.normal(scale=0.35, size=(int(is_visual.sum()), VISUAL_EMBEDDING_DIM))
    ).astype(np.float32)
    popularity = rng.lognormal(mean=0.0, sigma=1.0, size=n_items)
    impressions = rng.poisson(300 * popularity)
    ctr = _sigmoid(-2.5 + 0.6 * item_quality + rng.normal(scale=0.3, size=n_items))
    clicks = rng.binomial(impressions, ctr)
    likes = rng.binomial(clicks, _sigmoid(-1.5 + 0.5 * item_quality))
    shares = rng.binomial(likes, 0.1)

    # Candidate lists per query and modality.
    by_modality_topic: dict[tuple[int, int], np.ndarray] = {}
    for m in range(3):
        for t in range(config.n_topics):
            by_modality_topic[(m, t)] = np.flatnonzero(
                (item_modality[:n_catalogue] == m) & (item_topic[:n_catalogue] == t)
            )
    off_topic = {
        (m, t): np.flatnonzero((item_modality[:n_catalogue] == m) & (item_topic[:n_catalogue] != t))
        for m in range(3)
        for t in range(config.n_topics)
    }
    page_length = config.page_length
    page_item = np.zeros((config.n_queries, page_length), dtype=np.int64)
    for q in range(config.n_queries):
        chosen: list[int] = []
        for m in range(3):
            count = config.candidates_per_modality[m]
            on_topic = min(
                int(rng.binomial(count, config.on_topic_fraction)), len(by_modality_topic[(m, int(query_topic[q]))])
            )
            picks = list(rng.choice(by_modality_topic[(m, int(query_topic[q]))], size=on_topic, replace=False))
            picks += list(rng.choice(off_topic[(m, int(query_topic[q]))], size=count - on_topic, replace=False))
            chosen += picks
        chosen += [n_catalogue + q * n_answers + serial for serial in range(n_answers)]
        page_item[q] = chosen

    # Hidden truth and production scores of every (query, candidate).
    cand_modality = item_modality[page_item]
    same_topic = (item_topic[page_item] == query_topic[:, None]).astype(float)
    shared_bits = np.vectorize(lambda x: bin(int(x)).count("1"))(item_mask[page_item] & query_masks[:, None])
    query_bits = np.vectorize(lambda x: bin(int(x)).count("1"))(query_masks)[:, None]
    overlap = same_topic * shared_bits / query_bits
    quality = item_quality[page_item]
    intent_bonus = np.where(cand_modality == query_intent[:, None], 0.9, -0.3)
    intent_bonus = np.where((cand_modality == 3) & (query_intent[:, None] != 3), -0.6, intent_bonus)
    latent = (
        1.8 * same_topic + 1.2 * overlap + 0.5 * quality + intent_bonus + rng.normal(scale=0.4, size=same_topic.shape)
    )
    grade = np.searchsorted(np.array(GRADE_THRESHOLDS), latent, side="right").astype(np.int32)
    signal = same_topic + overlap + 0.3 * quality + rng.normal(scale=0.6, size=same_topic.shape)
    production = np.select(
        [cand_modality == 0, cand_modality == 1, cand_modality == 2, cand_modality == 3],
        [
            10 + 6 * signal + rng.normal(scale=2.0, size=signal.shape),
            _sigmoid(1.2 * signal - 1.5),
            2 * signal - 2 + rng.normal(scale=0.5, size=signal.shape),
            np.clip(40 + 25 * signal, 0, 100),
        ],
    )

    # Production page order: answers above 60 on top, then the slot template, then leftovers.
    order = np.zeros_like(page_item)
    for q in range(config.n_queries):
        queues = {
            m: list(
                np.flatnonzero(cand_modality[q] == m)[np.argsort(-production[q][cand_modality[q] == m], kind="stable")]
            )
            for m in range(4)
        }
        top_answers = [i for i in queues[3] if production[q, i] > 60]
        queues[3] = [i for i in queues[3] if production[q, i] <= 60]
        slots: list[int] = list(top_answers)
        template_index = 0
        while any(queues[m] for m in range(3)):
            wanted = MODALITIES.index(PAGE_SLOT_TEMPLATE[template_index % len(PAGE_SLOT_TEMPLATE)])
            template_index += 1
            if queues[wanted]:
                slots.append(queues[wanted].pop(0))
            elif template_index > 10 * page_length:  # only leftovers of other modalities remain
                break
        for m in range(4):
            slots += queues[m]
        order[q] = slots
    page_item = np.take_along_axis(page_item, order, axis=1)
    grade = np.take_along_axis(grade, order, axis=1)
    production = np.take_along_axis(production, order, axis=1)

    user_affinity = rng.dirichlet([2.0, 2.0, 2.0, 2.0], size=config.n_users)
    user_activity = rng.lognormal(0.0, 0.7, size=config.n_users)
    return _World(
        config=config,
        topic_names=topic_names,
        item_ids=np.array(ids),
        item_modality=item_modality,
        item_topic=item_topic,
        item_keyword_mask=item_mask,
        item_quality=item_quality,
        item_title=titles,
        item_body=bodies,
        item_visual=visual,
        item_impressions=impressions,
        item_clicks=clicks,
        item_likes=likes,
        item_shares=shares,
        query_ids=query_ids,
        query_text=query_text,
        query_topic=query_topic,
        query_keyword_mask=query_masks,
        query_intent=query_intent,
        query_popularity=query_popularity,
        page_item=page_item,
        page_grade=grade,
        page_production_score=production,
        user_ids=np.array([f"u{u:06d}" for u in range(config.n_users)]),
        user_gender=rng.choice(np.array(["female", "male", "unknown"]), size=config.n_users, p=[0.48, 0.48, 0.04]),
        user_age=rng.choice(np.array(["<18", "18-24", "25-39", "40+"]), size=config.n_users),
        user_platform=rng.choice(np.array(["iOS", "Android", "web"]), size=config.n_users),
        user_affinity=user_affinity,
        user_activity=user_activity,
        user_weight=user_activity / user_activity.sum(),
    )


def examination_probability(position: np.ndarray) -> np.ndarray:
    """The generator's true position bias, P(examined | 1-based position)."""
    return np.asarray(position, dtype=float) ** -EXAMINATION_EXPONENT


def generate_day(
    ds: str, *, size: SizeName = "demo", seed: int = 20251016, world: _World | None = None
) -> GeneratedDay:
    """Generate one day of logs, items, users and hidden relevance, deterministically."""
    day = date.fromisoformat(ds)
    config = GeneratorConfig.preset(size)
    world = world or build_world(config, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2, _stable_int(ds) % (2**32)]))

    n_requests = config.requests_per_day
    page_length = config.page_length
    request_query = rng.choice(config.n_queries, size=n_requests, p=world.query_popularity)
    request_user = rng.choice(config.n_users, size=n_requests, p=world.user_weight)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    request_seconds = np.sort(rng.integers(0, 86_400, size=n_requests))

    item_index = world.page_item[request_query]  # [requests, page]
    grades = world.page_grade[request_query]
    production_scores = world.page_production_score[request_query]
    # Exploration traffic: a small share of requests shows the page in a uniformly random order,
    # as production systems do to measure position bias. Without it no (query, item) ever moves
    # and a click model cannot separate position from relevance.
    explore = rng.random(n_requests) < config.exploration_fraction
    if explore.any():
        shuffled = np.argsort(rng.random((int(explore.sum()), page_length)), axis=1)
        item_index[explore] = np.take_along_axis(item_index[explore], shuffled, axis=1)
        grades[explore] = np.take_along_axis(grades[explore], shuffled, axis=1)
        production_scores[explore] = np.take_along_axis(production_scores[explore], shuffled, axis=1)
    modality_index = world.item_modality[item_index]
    positions = np.broadcast_to(np.arange(1, page_length + 1), item_index.shape)
    examination = examination_probability(positions)
    affinity = np.take_along_axis(world.user_affinity[request_user], modality_index, axis=1)
    attractiveness = np.minimum(np.array(ATTRACTIVENESS_BY_GRADE)[grades] * np.exp(0.6 * (affinity - 0.25)), 0.95)
    clicked = (rng.random(item_index.shape) < examination * attractiveness).astype(np.int32)
    dwell = np.where(
        clicked == 1,
        rng.lognormal(np.log(8.0) + 0.5 * grades, 0.5),
        np.nan,
    )

    flat = item_index.ravel()
    request_ids = np.array([f"{ds}-r{r:07d}" for r in range(n_requests)])
    timestamps = pa.array(
        [start + timedelta(seconds=int(s)) for s in request_seconds], type=pa.timestamp("us", tz="UTC")
    )
    repeat = np.repeat(np.arange(n_requests), page_length)
    search_logs = pa.table(
        {
            "ds": pa.array(np.full(flat.size, ds)),
            "request_id": pa.array(request_ids[repeat]),
            "query_id": pa.array(world.query_ids[request_query][repeat]),
            "query_text": pa.array(np.array(world.query_text, dtype=object)[request_query][repeat]),
            "user_id": pa.array(world.user_ids[request_user][repeat]),
            "request_ts": timestamps.take(pa.array(repeat)),
            "item_id": pa.array(world.item_ids[flat]),
            "modality": pa.array(np.array(MODALITIES)[modality_index.ravel()]),
            "position": pa.array(positions.ravel().astype(np.int32)),
            "production_score": pa.array(production_scores.ravel()),
            "clicked": pa.array(clicked.ravel()),
            "dwell_seconds": pa.array(dwell.ravel(), from_pandas=True),
            "logging_propensity": pa.nulls(flat.size, pa.float64()),
            "source": pa.array(np.full(flat.size, "generator")),
        },
        schema=load_contract("bronze.search_logs").arrow_schema(),
    )

    seen_items = np.unique(flat)
    visual = world.item_visual[seen_items]
    has_visual = ~np.isnan(visual).any(axis=1)
    items = pa.table(
        {
            "ds": pa.array(np.full(seen_items.size, ds)),
            "item_id": pa.array(world.item_ids[seen_items]),
            "modality": pa.array(np.array(MODALITIES)[world.item_modality[seen_items]]),
            "title": pa.array([world.item_title[i] for i in seen_items]),
            "body": pa.array([world.item_body[i] for i in seen_items]),
            "visual_embedding": pa.array(
                [row.tolist() if keep else None for row, keep in zip(visual, has_visual)],
                type=pa.list_(pa.float32()),
            ),
            "impression_count": pa.array(world.item_impressions[seen_items].astype(np.int64)),
            "click_count": pa.array(world.item_clicks[seen_items].astype(np.int64)),
            "like_count": pa.array(world.item_likes[seen_items].astype(np.int64)),
            "share_count": pa.array(world.item_shares[seen_items].astype(np.int64)),
            "source": pa.array(np.full(seen_items.size, "generator")),
        },
        schema=load_contract("bronze.items").arrow_schema(),
    )

    seen_users = np.unique(request_user)
    dense = np.column_stack([world.user_affinity[seen_users], world.user_activity[seen_users]]).astype(np.float32)
    users = pa.table(
        {
            "ds": pa.array(np.full(seen_users.size, ds)),
            "user_id": pa.array(world.user_ids[seen_users]),
            "gender": pa.array(world.user_gender[seen_users]),
            "age_bucket": pa.array(world.user_age[seen_users]),
            "platform": pa.array(world.user_platform[seen_users]),
            "dense_features": pa.array(dense.tolist(), type=pa.list_(pa.float32())),
            "source": pa.array(np.full(seen_users.size, "generator")),
        },
        schema=load_contract("bronze.users").arrow_schema(),
    )

    seen_queries = np.unique(request_query)
    pairs_item = world.page_item[seen_queries].ravel()
    relevance = pa.table(
        {
            "ds": pa.array(np.full(pairs_item.size, ds)),
            "query_id": pa.array(np.repeat(world.query_ids[seen_queries], page_length)),
            "item_id": pa.array(world.item_ids[pairs_item]),
            "modality": pa.array(np.array(MODALITIES)[world.item_modality[pairs_item]]),
            "grade": pa.array(world.page_grade[seen_queries].ravel().astype(np.int32)),
        },
        schema=load_contract("truth.relevance").arrow_schema(),
    )
    return GeneratedDay(ds=ds, search_logs=search_logs, items=items, users=users, relevance=relevance)
