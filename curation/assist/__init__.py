"""AI assistance: the findings-model plugin interface, model discovery, the model's inputs read from
de-identified DICOM, and the model's predictions stored in the derived zone (issue 18)."""
