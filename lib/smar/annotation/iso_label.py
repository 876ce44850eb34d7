"""Iso-label anchor search: find, per modality, where each page-grade boundary falls in the
single-modal ranked list, with a logarithmic number of page-level judgements.

Model. Page grades are 0..4. Along one modality's ranked list (positions 0..n-1) they are assumed
to be non-increasing. For a grade boundary g ("grade >= g" versus "grade < g") the boundary

    b(m, g) = first position whose grade < g  =  number of items with grade >= g

lies in 0..n (n when no item drops below g, 0 when all are below). The search keeps, per
(modality, g), a candidate interval [low, high] with low <= b <= high, starts at [0, n], and
probes the midpoint (low + high) // 2: a grade >= g there moves low past it, a grade < g moves
high onto it. One judged grade informs every boundary of its modality, so probes of different
boundaries are shared and deduplicated.

Rounds. `next_probes()` returns the positions to judge now (one midpoint per unresolved boundary,
deduplicated, never a position already judged); the caller gets those labels and `record`s them;
then asks again. Round r's probes therefore depend on round r-1's labels only.

Cost. On monotone lists each boundary is resolved after at most ceil(log2(n + 1)) of its own
probes (<= ceil(log2 n) + 1): a midpoint probe at least halves the candidate count, and any other
judgement landing in the interval only shrinks it further.

Noise. Real grades are only roughly monotone. A judgement updates a boundary only when it falls
inside that boundary's open interval [low, high), so every interval stays well formed and strictly
shrinks with each of its probes: the search always terminates, and never uses more than n
judgements per modality or the per-query cap. A judged grade that contradicts monotonicity with an
earlier judgement of the same modality (an earlier position with a lower grade, or a later one with
a higher grade) is counted in `inconsistencies`; the boundaries are then only an estimate and need
not be nested (b(g) >= b(g+1) may fail).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from smar.vocabulary import MAX_GRADE, MIN_GRADE

DEFAULT_BOUNDARIES: tuple[int, ...] = (1, 2, 3, 4)


@dataclass(frozen=True)
class IsoLabelAnchor:
    """The two judged items either side of boundary g in one modality.

    `last_at_or_above` is the last position with grade >= g (None when b = 0), `first_below` the
    first position with grade < g (None when b = n). Once a boundary is resolved both neighbours
    have been judged, so their grades are known exactly. Items at `last_at_or_above` in modality A
    outrank items at `first_below` in modality B: the cross-modal training pairs.
    """

    modality: str
    boundary_grade: int
    boundary: int
    last_at_or_above: int | None
    last_at_or_above_grade: int | None
    first_below: int | None
    first_below_grade: int | None


@dataclass
class IsoLabelSearch:
    """Pure state of the iso-label search for one query (see the module docstring).

    `max_judgements_per_query` caps the judgements over all modalities (None: no cap). When a
    round's probes exceed what is left, they are kept round-robin over modalities (sorted by
    name), lower boundaries first within a modality.
    """

    n_items_by_modality: Mapping[str, int]
    grades: Sequence[int] = DEFAULT_BOUNDARIES
    max_judgements_per_query: int | None = None
    inconsistencies: int = field(default=0, init=False)
    _intervals: dict[tuple[str, int], list[int]] = field(default_factory=dict, init=False)
    _judged: dict[str, dict[int, int]] = field(default_factory=dict, init=False)
    _requested: dict[tuple[str, int], list[int]] = field(default_factory=dict, init=False)
    _own_probes: dict[tuple[str, int], int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.grades = tuple(sorted(set(self.grades)))
        if not self.grades or any(not MIN_GRADE < g <= MAX_GRADE for g in self.grades):
            raise ValueError(f"grade boundaries must lie in {MIN_GRADE + 1}..{MAX_GRADE}, got {self.grades}")
        if self.max_judgements_per_query is not None and self.max_judgements_per_query < 0:
            raise ValueError("max_judgements_per_query must be >= 0 or None")
        for modality, n_items in self.n_items_by_modality.items():
            if n_items < 0:
                raise ValueError(f"modality {modality!r}: n_items must be >= 0, got {n_items}")
            self._judged[modality] = {}
            for g in self.grades:
                self._intervals[(modality, g)] = [0, n_items]
                self._own_probes[(modality, g)] = 0

    @property
    def modalities(self) -> list[str]:
        return sorted(self.n_items_by_modality)

    @property
    def judgements_used(self) -> int:
        return sum(len(judged) for judged in self._judged.values())

    def judgements_by_modality(self) -> dict[str, int]:
        """Judged items per modality so far."""
        return {modality: len(self._judged[modality]) for modality in self.modalities}

    def own_probes_by_boundary(self) -> dict[tuple[str, int], int]:
        """Judgements asked as the midpoint of each (modality, g); a shared one counts for each."""
        return dict(self._own_probes)

    def judged(self) -> dict[str, dict[int, int]]:
        """Every judged grade: modality -> {position: grade}."""
        return {modality: dict(self._judged[modality]) for modality in self.modalities}

    def _remaining_budget(self) -> int | None:
        if self.max_judgements_per_query is None:
            return None
        return max(0, self.max_judgements_per_query - self.judgements_used)

    def _unresolved(self) -> list[tuple[str, int]]:
        return [
            (modality, g)
            for modality in self.modalities
            for g in self.grades
            if self._intervals[(modality, g)][0] < self._intervals[(modality, g)][1]
        ]

    def next_probes(self) -> dict[str, list[int]]:
        """Positions to judge this round, per modality (sorted); {} when the search is over."""
        wanted: dict[str, dict[int, list[int]]] = {}
        for modality, g in self._unresolved():
            low, high = self._intervals[(modality, g)]
            # The midpoint lies in [low, high), which never holds a judged position: a judgement
            # inside the interval moves an end past it, one outside stays outside.
            midpoint = (low + high) // 2
            wanted.setdefault(modality, {}).setdefault(midpoint, []).append(g)

        remaining = self._remaining_budget()
        queues = {
            modality: sorted(by_position.items(), key=lambda entry: (min(entry[1]), entry[0]))
            for modality, by_position in wanted.items()
        }
        kept: dict[str, list[int]] = {}
        self._requested = {}
        while any(queues.values()) and (remaining is None or remaining > 0):
            for modality in sorted(queues):
                if not queues[modality] or (remaining is not None and remaining <= 0):
                    continue
                position, boundary_grades = queues[modality].pop(0)
                kept.setdefault(modality, []).append(position)
                self._requested[(modality, position)] = boundary_grades
                if remaining is not None:
                    remaining -= 1
        return {modality: sorted(positions) for modality, positions in kept.items()}

    def record(self, modality: str, position: int, grade: int) -> None:
        """Record the page-level grade (0..4) of the item at `position` of `modality`'s list."""
        if modality not in self._judged:
            raise ValueError(f"unknown modality {modality!r}; known: {self.modalities}")
        n_items = self.n_items_by_modality[modality]
        if not 0 <= position < n_items:
            raise ValueError(f"modality {modality!r}: position {position} outside 0..{n_items - 1}")
        if isinstance(grade, bool) or not isinstance(grade, numbers.Integral) or not (MIN_GRADE <= grade <= MAX_GRADE):
            raise ValueError(f"grade must be an integer in {MIN_GRADE}..{MAX_GRADE}, got {grade!r}")
        position, grade = int(position), int(grade)  # numpy integers become plain ints
        judged = self._judged[modality]
        if position in judged:
            raise ValueError(f"modality {modality!r}: position {position} was already judged")
        remaining = self._remaining_budget()
        if remaining is not None and remaining <= 0:
            raise ValueError(f"judgement cap of {self.max_judgements_per_query} per query already reached")

        if any(
            (earlier < position and earlier_grade < grade) or (earlier > position and earlier_grade > grade)
            for earlier, earlier_grade in judged.items()
        ):
            self.inconsistencies += 1
        judged[position] = grade

        for g in self._requested.pop((modality, position), []):
            self._own_probes[(modality, g)] += 1
        for g in self.grades:
            interval = self._intervals[(modality, g)]
            low, high = interval
            if not low <= position < high:
                continue  # already implied (or, on noisy data, contradicted) by earlier labels
            if grade >= g:
                interval[0] = position + 1
            else:
                interval[1] = position

    def is_done(self) -> bool:
        """True when every boundary is resolved or the judgement cap is spent."""
        remaining = self._remaining_budget()
        return not self._unresolved() or (remaining is not None and remaining <= 0)

    def boundaries(self) -> dict[tuple[str, int], int | None]:
        """(modality, g) -> first position with grade < g (items graded >= g); None: unresolved."""
        return {
            key: (interval[0] if interval[0] == interval[1] else None)
            for key, interval in sorted(self._intervals.items())
        }

    def intervals(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(modality, g) -> the current candidate interval [low, high] for the boundary."""
        return {key: (low, high) for key, (low, high) in sorted(self._intervals.items())}

    def anchors(self) -> dict[int, list[IsoLabelAnchor]]:
        """For each boundary g, the resolved modalities' anchors (see `IsoLabelAnchor`)."""
        result: dict[int, list[IsoLabelAnchor]] = {g: [] for g in self.grades}
        for (modality, g), boundary in self.boundaries().items():
            if boundary is None:
                continue
            judged = self._judged[modality]
            above = boundary - 1 if boundary > 0 else None
            below = boundary if boundary < self.n_items_by_modality[modality] else None
            result[g].append(
                IsoLabelAnchor(
                    modality=modality,
                    boundary_grade=g,
                    boundary=boundary,
                    last_at_or_above=above,
                    last_at_or_above_grade=judged.get(above) if above is not None else None,
                    first_below=below,
                    first_below_grade=judged.get(below) if below is not None else None,
                )
            )
        return result


@dataclass(frozen=True)
class IsoLabelResult:
    """Outcome of `run_search`."""

    boundaries: dict[tuple[str, int], int | None]
    anchors: dict[int, list[IsoLabelAnchor]]
    judgements_by_modality: dict[str, int]
    own_probes_by_boundary: dict[tuple[str, int], int]
    judged: dict[str, dict[int, int]]
    rounds: int
    inconsistencies: int
    completed: bool


def run_search(
    grades_by_modality: Mapping[str, Sequence[int]],
    *,
    grades: Iterable[int] = DEFAULT_BOUNDARIES,
    max_judgements_per_query: int | None = None,
) -> IsoLabelResult:
    """Run the search to the end against an oracle that knows every item's grade (for tests,
    benchmarks and the simulated annotator). `completed` is False when the cap stopped it."""
    search = IsoLabelSearch(
        {modality: len(list_grades) for modality, list_grades in grades_by_modality.items()},
        grades=tuple(grades),
        max_judgements_per_query=max_judgements_per_query,
    )
    rounds = 0
    # Every round judges at least one new position, so n_total + 1 rounds is a hard ceiling.
    max_rounds = sum(len(list_grades) for list_grades in grades_by_modality.values()) + 1
    while not search.is_done():
        probes = search.next_probes()
        if not probes:
            break
        rounds += 1
        if rounds > max_rounds:
            raise RuntimeError("iso-label search did not terminate; this is a bug")
        for modality, positions in probes.items():
            for position in positions:
                search.record(modality, position, int(grades_by_modality[modality][position]))
    return IsoLabelResult(
        boundaries=search.boundaries(),
        anchors=search.anchors(),
        judgements_by_modality=search.judgements_by_modality(),
        own_probes_by_boundary=search.own_probes_by_boundary(),
        judged=search.judged(),
        rounds=rounds,
        inconsistencies=search.inconsistencies,
        completed=all(value is not None for value in search.boundaries().values()),
    )


def judgement_bound(n_items: int) -> int:
    """Own probes a single boundary may need on a monotone list of n items: ceil(log2(n + 1))."""
    return math.ceil(math.log2(n_items + 1)) if n_items > 0 else 0
