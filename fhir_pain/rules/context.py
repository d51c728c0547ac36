"""What every rule reads: one patient's facts, resolved once per evaluation (pure data, no I/O)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir_pain import pgx
from fhir_pain.pgx import guidance
from fhir_pain.facts import Drug, GeneResult, MedicationUse
from fhir_pain.gather import CONDITIONS, MEDICATIONS, PAIN, PGX


@dataclass
class RuleContext:
    hook: str
    now: datetime
    patient_id: str
    results: list[GeneResult]
    active: list[MedicationUse]          # the patient's active medication list (never the drafts)
    drafts: list[MedicationUse]          # every draft MedicationRequest of the order session
    pain: Any | None                     # fhir_pain.pain.PainProfile, None when it could not be built
    missing: frozenset[str] = frozenset()  # prefetch keys that could not be (fully) had
    patient: dict | None = None          # the Patient resource (birthDate for the age limits), None when not had
    # raw records the safety rules match against their code lists (fhir_pain.rules.records)
    conditions: list[dict] = field(default_factory=list)
    procedures: list[dict] = field(default_factory=list)
    observations: list[dict] = field(default_factory=list)
    # earlier (completed, stopped, on-hold) requests: the pain engine's trials, CPIC's population (> 3 months of use)
    history: list[MedicationUse] = field(default_factory=list)
    guidelines: str = "cpic"             # the site's guideline source (setting GUIDELINES: cpic | dpwg | both)
    _profiles: dict[Any, Any] = field(default_factory=dict, repr=False)   # memo: profiles, the on_drug index

    # ---- what is known --------------------------------------------------------------------------------------
    @property
    def pgx_complete(self) -> bool:
        """False when PGx results could not be read: "no result on file" must then never be claimed."""
        return PGX not in self.missing

    @property
    def meds_complete(self) -> bool:
        """False when the active medication list is missing: phenoconversion cannot be ruled out."""
        return MEDICATIONS not in self.missing

    @property
    def pain_complete(self) -> bool:
        return PAIN not in self.missing and CONDITIONS not in self.missing

    @property
    def pain_phenotypes(self) -> tuple[str, ...]:
        return tuple(getattr(self.pain, "phenotypes", ()) or ())

    def genes_on_file(self) -> set[str]:
        return {r.gene for r in self.results}

    # ---- PGx profile ----------------------------------------------------------------------------------------
    def profile_for(self, med: MedicationUse | None = None, drug: Drug | None = None):
        """The PGx profile to judge ``drug`` (or ``med``) with: phenoconversion by every active and draft
        medication except those containing the judged drug itself. A drug is not its own phenoconverter:
        paroxetine, ordered or renewed, is looked up with the patient's genetic CYP2D6 phenotype."""
        listed = [d.name for d in med.ingredients] if med is not None else []
        if drug is not None:
            listed.append(drug.name)
        names = frozenset(listed)
        key = ("profile-for", names)    # every rule asks for each draft's profile: the choice below once per names
        got = self._profiles.get(key)
        if got is None:
            everyone = self._profile_without(frozenset())
            converters = self._profiles.get("converters")    # the inhibitors acting on anyone's profile, once
            if converters is None:
                converters = self._profiles["converters"] = frozenset(
                    [n for gp in everyone.genes.values() for n in gp.phenoconverted_by])
            if names.isdisjoint(converters):
                got = everyone    # the judged drug inhibits nothing here: leaving it out would change nothing
            else:
                got = self._profile_without(names)
            self._profiles[key] = got
        return got

    def genetic_profile(self):
        """The profile with no phenoconversion at all: what applies once every inhibitor is stopped."""
        if "genetic" not in self._profiles:
            self._profiles["genetic"] = pgx.resolve_profile(self.results, [], self._genotypes(),
                                                            unchanged_from=self._profiles.get(frozenset()))
        return self._profiles["genetic"]

    def _profile_without(self, names: frozenset[str]):
        if names not in self._profiles:
            others = [m for m in self.active + self.drafts if names.isdisjoint([d.name for d in m.ingredients])] \
                if names else self.active + self.drafts
            self._profiles[names] = pgx.resolve_profile(self.results, others, self._genotypes(),
                                                        unchanged_from=self._profiles.get(frozenset()))
        return self._profiles[names]

    def _genotypes(self):
        """The results' part of every profile above, read once (only the medications differ between them)."""
        if "genotypes" not in self._profiles:
            self._profiles["genotypes"] = pgx.read_genotypes(self.results)
        return self._profiles["genotypes"]

    def recommend(self, drug: Drug, profile, population: str | None = None, *, mode: str = "cpic"):
        """The recommendation once per drug, profile, population and guideline mode in this evaluation: the drug's
        own rule, the alternatives of another card, the first-line options of the pain rules ask about the same
        drugs. ``mode`` is the site's GUIDELINES for the drug-gene cards; CPIC alone elsewhere."""
        # the drug by its fields: a tuple of strings hashes in C, a dataclass through Python (and once, not twice)
        key = ("recommend", drug.rxnorm, drug.name, id(profile), population, mode)
        got = self._profiles.get(key)
        if got is None:
            rec = pgx.recommend(drug, profile, population) if mode == "cpic" else \
                guidance.recommend(drug, profile, population, mode)
            got = self._profiles[key] = (rec, profile)   # profile kept: its id stays its own
        return got[0]

    def on_drug(self, drug: Drug, *, exclude: MedicationUse | None = None) -> MedicationUse | None:
        """The active or draft medication that already contains ``drug`` (to avoid suggesting duplicates)."""
        for m in self._taking().get(drug.rxnorm, ()):
            if m is not exclude:
                return m
        return None

    def _taking(self) -> dict[str, list[MedicationUse]]:
        """Ingredient RxCUI -> the active and draft medications containing it, in list order (on_drug is asked
        about every candidate of every class for every draft: one pass over the lists instead of one per ask)."""
        if "taking" not in self._profiles:
            index: dict[str, list[MedicationUse]] = {}
            for m in self.active + self.drafts:
                ingredients = m.ingredients
                if len(ingredients) == 1:      # most orders: no duplicate to drop
                    index.setdefault(ingredients[0].rxnorm, []).append(m)
                elif ingredients:
                    for rxnorm in dict.fromkeys(i.rxnorm for i in ingredients):
                        index.setdefault(rxnorm, []).append(m)
            self._profiles["taking"] = index
        return self._profiles["taking"]
