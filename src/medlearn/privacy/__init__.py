"""Privacy: de-identification of DICOM, EHR tables and FHIR bundles (``medlearn deid``).

Modules have one job each: :mod:`~medlearn.privacy.keys` (the user's secret and everything derived from
it), :mod:`~medlearn.privacy.dicom_profile` (the PS3.15 attribute table), :mod:`~medlearn.privacy.dicom_deid`,
:mod:`~medlearn.privacy.tables_deid`, :mod:`~medlearn.privacy.fhir_deid`, :mod:`~medlearn.privacy.text_scrub`
and :mod:`~medlearn.privacy.deid` (walks an input file or folder and writes the mirrored output and report).
Differentially private training (a config's ``privacy:`` section, DP-SGD with Opacus) is :mod:`~medlearn.privacy.dp`.
"""
