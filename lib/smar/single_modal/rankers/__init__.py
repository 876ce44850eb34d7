"""Single-modal rankers g_m(q, i): one ranker per modality trained on clicks.

web and answer: a head over frozen MiniLM text embeddings (`models.TextRanker`); image and video:
an MLP over the query embedding, the item's visual embedding and its caption
(`models.VisualRanker`). All take the feature dict of `features.build_feature_arrays` and return
scores [batch]. MiniLM (sentence-transformers) is imported only when text is first encoded
(`encoder`). Artifacts: `artifacts`; the device a worker uses: `device`; the loop: `training`.
"""
