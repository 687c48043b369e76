"""The shipped triggers; importing a module registers its triggers (:mod:`av_pipeline.mining.registry`).

- :mod:`~av_pipeline.mining.triggers.objects`: shadow vs onboard (missed, ghost, class, localization, size, heading);
- :mod:`~av_pipeline.mining.triggers.temporal`: onboard tracks that flicker, jump, change size or flip class;
- :mod:`~av_pipeline.mining.triggers.camera`: camera vs LiDAR;
- :mod:`~av_pipeline.mining.triggers.uncertain`: uncertain shadow detections (active learning);
- :mod:`~av_pipeline.mining.triggers.ego`: planned vs driven path.
"""
