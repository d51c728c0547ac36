"""The typed facts that flow between fhir_pain's stages (the contract between its rooms).

    FHIR dicts --readers--> facts (Drug, MedicationUse, GeneResult)
               --engines--> GenePhenotype / PgxProfile (fhir_pain.pgx), PainProfile (fhir_pain.pain)
               --rules----> Finding (fhir_pain.rules)
               --output---> cds_hooks Card (fhir_pain.cards) | DetectedIssue (fhir_pain.poller)

Everything here is small, read-only (frozen where that is cheap; the facts built for every medication and result
of every call by convention, see MedicationUse) and JSON-serialisable through ``to_dict``. No Flask, no HTTP, no
fhir.resources. Field vocabularies follow ``docs/architecture.md`` ("Fixed contracts").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# ---- vocabularies of the findings contract ------------------------------------------------------------------

PHENOTYPES = (
    "Poor Metabolizer",
    "Intermediate Metabolizer",
    "Normal Metabolizer",
    "Rapid Metabolizer",
    "Ultrarapid Metabolizer",
    "Likely Intermediate Metabolizer",
    "Likely Poor Metabolizer",
    "Indeterminate",
)
FindingKind = Literal["drug-gene", "pre-test", "pain-phenotype", "treatment-response", "informational", "safety",
                      "opioid-safety"]
Classification = Literal["Strong", "Moderate", "Optional", "No Recommendation"]
Action = Literal[
    "avoid", "use-alternative", "reduce-dose", "standard-dose", "monitor", "order-test", "refer",
    "no-recommendation", "informational",
]
PainPhenotype = Literal[
    "chronic-pain", "neuropathic-likely", "neuropathic-possible", "nociplastic-features",
    "inflammatory-contribution", "high-catastrophizing", "depression", "anxiety",
    "treatment-non-response", "treatment-response",
]
Indicator = Literal["info", "warning", "critical"]


def _prune(d: dict) -> dict:
    """Drop None / empty values: CDS Hooks forbids null and empty containers in what we emit."""
    # a true value (most are) is kept in one test: None, [], {} and "" are all false
    return {k: v for k, v in d.items() if v or (v is not None and v != [] and v != {} and v != "")}


# ---- medications ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Drug:
    """An ingredient, identified by its RxNorm ingredient RxCUI (TTY=IN) and lower-case name."""
    rxnorm: str
    name: str

    def to_dict(self) -> dict:
        return {"rxnorm": self.rxnorm, "name": self.name}


# Read-only by convention, not frozen (like fhirdates.FhirTime): a frozen dataclass sets each field through
# object.__setattr__, ~1 us more per object, and these are built for every medication and result of every call.
# unsafe_hash keeps the hash a frozen dataclass has (of the compared fields).
@dataclass(unsafe_hash=True)
class MedicationUse:
    """One MedicationRequest, resolved to ingredients (fhir_pain.pgx.drugs.identify builds it)."""
    ref: str                          # "MedicationRequest/123" (or "urn:uuid:..." for a draft without id)
    status: str                       # FHIR status as sent ("active", "draft", ...)
    intent: str | None
    ingredients: tuple[Drug, ...]     # empty when nothing could be recognised
    text: str                         # what the prescriber sees (coding.display / text), for card wording
    authored_on: datetime | None = None
    is_draft: bool = False            # from context.draftOrders (order-select / order-sign)
    resource: dict | None = field(default=None, compare=False, repr=False)  # the raw FHIR dict


# ---- pharmacogenomics -----------------------------------------------------------------------------------------

@dataclass(unsafe_hash=True)   # read-only; not frozen: see MedicationUse
class GeneResult:
    """One PGx result as the EHR reported it (fhir_pain.pgx.readers builds these from Observations)."""
    gene: str                         # HGNC symbol, upper-case: "CYP2D6"
    ref: str                          # "Observation/123"
    diplotype: str | None = None      # normalised, e.g. "*1/*4", "*1x2/*4"
    phenotype: str | None = None      # as reported, mapped to CPIC vocabulary when possible
    effective: datetime | None = None
    status: str | None = None


@dataclass(unsafe_hash=True)   # read-only; not frozen: see MedicationUse
class GenePhenotype:
    """The engine's answer for one gene (fhir_pain.pgx.phenotype builds it)."""
    gene: str
    phenotype: str                    # one of PHENOTYPES: the phenotype to act on (after phenoconversion)
    diplotype: str | None = None
    activity_score: str | None = None  # CPIC lookup-key form: "0.0", "0.25", "1.0", "≥3.0", "n/a"
    source: Literal["computed", "reported"] = "computed"
    genetic_phenotype: str | None = None   # before phenoconversion (equals phenotype when none applied)
    genetic_activity_score: str | None = None
    phenoconverted_by: tuple[str, ...] = ()  # inhibitor ingredient names
    possible_scores: tuple[str, ...] = ()    # several when a duplication is ambiguous
    genetic_possible_scores: tuple[str, ...] = ()   # several when the genotype alone is ambiguous (copy number)
    ambiguous: bool = False           # True: the possible scores lead to different advice; never act confidently
    conflicting: bool = False         # True: results on file for this gene disagree on the phenotype (newest used)
    notes: tuple[str, ...] = ()       # conflicts, mismatches, unknown alleles ... in plain words
    evidence: tuple[str, ...] = ()    # "Observation/123"

    def to_finding(self) -> dict:
        """The ``genes[GENE]`` object of the findings contract."""
        return _prune({
            "diplotype": self.diplotype,
            "activityScore": self.activity_score,
            "phenotype": self.phenotype,
            "source": self.source,
            "phenoconvertedBy": list(self.phenoconverted_by),
        })


@dataclass(unsafe_hash=True)   # read-only; not frozen: see MedicationUse
class Recommendation:
    """A CPIC recommendation for one drug and the patient's gene set (fhir_pain.pgx.recommend returns it)."""
    drug: Drug
    genes: dict[str, GenePhenotype]
    rule: str                         # "cpic/codeine/CYP2D6"
    implication: str
    recommendation: str               # gist, in our words
    classification: str               # Classification
    action: str                       # Action
    alternatives: tuple[Drug, ...] = ()
    knowledge: dict = field(default_factory=dict)   # {"source": "CPIC", "version": ..., "url": ...}
    evidence: tuple[str, ...] = ()
    ambiguous: bool = False           # the possibilities give different advice (the most cautious one is given)
    # {"why", "possibilities": [{phenotype, activityScore | genes, classification, action, source}], "basis"}
    uncertainty: dict | None = None
    population: str | None = None     # the CPIC population looked up, for tables that have several
    # The guideline choice (fhir_pain.pgx.guidance; all empty under the default, CPIC alone):
    indicator: str | None = None      # an indicator the guideline's row sets (DPWG "contraindicated" rows)
    sources: tuple[dict, ...] = ()    # the findings' ``recommendations`` entries (source, version, action, ...)
    others: tuple["Recommendation", ...] = ()   # the other guideline's advice, shown beside this one
    note: str = ""                    # why another guideline's advice is shown (e.g. DPWG has none for the pair)


# ---- the rules' output ----------------------------------------------------------------------------------------

@dataclass
class Finding:
    """One piece of advice. Cards (services) and DetectedIssues (poller) are both rendered from findings."""
    rule: str
    kind: str                         # FindingKind
    indicator: str                    # Indicator: severity for cards and DetectedIssue.severity
    summary: str                      # <= 140 characters, plain text
    detail: str = ""                  # GitHub-flavoured markdown
    drug: Drug | None = None
    genes: dict[str, GenePhenotype] = field(default_factory=dict)
    classification: str | None = None
    action: str | None = None
    phenotypes: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()    # FHIR references of the resources used
    knowledge: dict = field(default_factory=dict)
    medication: MedicationUse | None = None   # the order / active medication the finding is about
    alternatives: tuple[Drug, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # rule-specific data for renderers (e.g. referral kind)
    uncertainty: dict | None = None   # the contract's uncertainty object (Recommendation.uncertainty)
    population: str | None = None     # the CPIC population applied (Recommendation.population)
    mme: dict | None = None           # opioid-safety: {"total", "byIngredient", "unit": "MME/d"}; None if unreadable
    recommendations: list[dict] | None = None   # drug-gene under GUIDELINES dpwg/both: each source's advice

    def to_contract(self) -> dict:
        """The object placed in ``card.extension["io.fhir-pain.findings"]``."""
        return _prune({
            "rule": self.rule,
            "kind": self.kind,
            "drug": self.drug.to_dict() if self.drug else None,
            "genes": {g: p.to_finding() for g, p in self.genes.items()},
            "classification": self.classification,
            "action": self.action,
            "phenotypes": list(self.phenotypes),
            "evidence": list(self.evidence),
            "knowledge": self.knowledge,
            "uncertainty": self.uncertainty,
            "population": self.population,
            "mme": self.mme,
            "recommendations": self.recommendations,
        })


# ---- one patient's data, as services (prefetch) and the poller (FHIR searches) both gather it ----------------

@dataclass
class PatientData:
    """Everything the rules read for one patient, as plain FHIR dicts. Built by the services and the poller."""
    patient_id: str
    now: datetime
    patient: dict | None = None
    observations: list[dict] = field(default_factory=list)       # PGx results and pain assessments
    conditions: list[dict] = field(default_factory=list)
    procedures: list[dict] = field(default_factory=list)        # the FDA tonsillectomy/adenoidectomy limit reads them
    medication_requests: list[dict] = field(default_factory=list)  # the patient's (active) medication list
    medications: dict[str, dict] = field(default_factory=dict)   # "Medication/id" -> Medication, for references
    draft_orders: list[dict] = field(default_factory=list)       # context.draftOrders entries (order hooks)
    selections: tuple[str, ...] = ()                              # context.selections (order-select)
    missing: tuple[str, ...] = ()                                 # data that could not be had (prefetch keys)
