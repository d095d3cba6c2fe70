"""Biosignals (ECG, EEG): ``io`` reads WFDB/EDF/MAT/text files into a :class:`~medlearn.signals.io.Recording`;
``preprocess`` filters, detects R-peaks, scores signal quality and cuts beats. Nothing heavy is imported here."""
