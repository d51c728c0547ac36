"""Patient-reported outcomes: FHIR Questionnaires of the instruments the pain engine scores, and the scored
Observations a QuestionnaireResponse gives (SDC observation-based extraction), optionally written to a FHIR server.

  forms.py     the Questionnaires in profiles/questionnaires/ (with licence) as typed forms
  extract.py   QuestionnaireResponse -> transaction Bundle of Observations in the codes and shapes
               fhir_pain.pain.scoring reads; InvalidResponse (-> 422) says which items are missing or wrong
  write.py     that Bundle to the configured FHIR server, or the dashboard session's, through
               cds_hooks.fhir_client (allowlisted, idempotent)
  views.py     the blueprint under /pro: $extract, the Questionnaires, the server-rendered fill page
"""
