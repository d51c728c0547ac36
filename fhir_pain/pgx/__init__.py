"""Pharmacogenomics: FHIR PGx results and medications -> per-gene phenotypes -> CPIC recommendations.

Pure domain code (no Flask, no HTTP). Knowledge comes from profiles/pgx/ (generated from CPIC's exports by
scripts/build_cpic_profiles.py, plus hand-encoded files that say so in their meta).

    identify(MedicationRequest)            -> MedicationUse (ingredients)
    read_gene_results(observations)        -> [GeneResult]
    resolve_profile(results, medications)  -> PgxProfile (GenePhenotype per gene, phenoconversion, conflicts)
    read_genotypes(results)                -> Genotypes (the results' part of a profile, to share between profiles)
    guideline_for(drug) / recommend(drug, profile[, population]) / populations(drug) / drug_by_name(name)
"""
from fhir_pain.pgx.drugs import code_verified, drug_by_name, drug_by_rxnorm, identify
from fhir_pain.pgx.profile import Genotypes, PgxProfile, read_genotypes, resolve_profile
from fhir_pain.pgx.readers import read_gene_results
from fhir_pain.pgx.recommend import Guideline, guideline_for, informational_recommendations, populations, recommend

__all__ = [
    "Genotypes", "Guideline", "PgxProfile", "code_verified", "drug_by_name", "drug_by_rxnorm", "guideline_for",
    "identify", "informational_recommendations", "populations", "read_gene_results", "read_genotypes", "recommend",
    "resolve_profile",
]
