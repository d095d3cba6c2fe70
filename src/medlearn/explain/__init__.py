"""Explanations for any bundle: Grad-CAM heatmaps (imaging), attributions (later: IG, attention)."""
