"""The chest findings model: a small CNN that answers nodule / opacity / effusion on a chest
radiograph, with a heatmap per label and box proposals from the heatmap (docs/ai.md).

`network` (the CNN), `preprocess` (pixels -> the network's input), `cam` (heatmaps: logit contribution, Grad-CAM, occlusion), `boxes`
(proposals from a heatmap), `weights` (the shipped file: state dict + model card), `plugin` (the
`curate.findings_models` entry point `chest`). Only `plugin` knows the platform's interface types.
"""
