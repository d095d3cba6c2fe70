"""Biosignal tasks: ``ecg_af`` (CinC 2017), ``ecg_beats`` (MIT-BIH, AAMI classes), ``eeg_seizure`` (Bonn,
New Delhi), ``eeg_sleep`` (Sleep-EDF epoch features)."""
