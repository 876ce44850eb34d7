"""Single-modal rankers g_m(q, i), step 1 of SMAR: one ranker per modality trained on clicks.

web and answer: a head over frozen MiniLM text embeddings (`TextRanker`); image and video: an MLP
over the query embedding and the item's visual embedding (`VisualRanker`). All take the feature
dict of `features.build_feature_arrays` and return scores [batch]. MiniLM (sentence-transformers)
is imported only when text is first encoded.
"""

from smar.rankers.artifacts import (
    LoadedRanker,
    RankerArtifactError,
    RankerMetadata,
    artifact_load_count,
    clear_ranker_cache,
    load_ranker,
    load_ranker_cached,
    save_ranker,
)
from smar.rankers.device import select_device
from smar.rankers.encoder import (
    TEXT_EMBEDDING_DIM,
    EncodedTexts,
    encode_unique,
    encoder_load_count,
    get_text_encoder,
    rows_encoded_count,
)
from smar.rankers.features import (
    ENGAGEMENT_FEATURE_NAMES,
    MODALITIES,
    build_feature_arrays,
    engagement_features,
    item_texts,
    join_impressions_with_items,
    query_term_coverage,
    modality_kind,
    visual_embedding_matrix,
)
from smar.rankers.models import (
    RankerConfig,
    SingleModalRanker,
    TextRanker,
    VisualRanker,
    build_ranker,
    default_config,
)
from smar.rankers.training import (
    ValidationData,
    make_pairs,
    ndcg_at_10_within_groups,
    pairwise_hinge_loss,
    preference_labels,
    score_frame,
    train_ranker,
)

__all__ = [
    "ENGAGEMENT_FEATURE_NAMES",
    "MODALITIES",
    "TEXT_EMBEDDING_DIM",
    "EncodedTexts",
    "LoadedRanker",
    "RankerArtifactError",
    "RankerConfig",
    "RankerMetadata",
    "SingleModalRanker",
    "TextRanker",
    "ValidationData",
    "VisualRanker",
    "artifact_load_count",
    "build_feature_arrays",
    "build_ranker",
    "clear_ranker_cache",
    "default_config",
    "encode_unique",
    "encoder_load_count",
    "engagement_features",
    "get_text_encoder",
    "item_texts",
    "join_impressions_with_items",
    "load_ranker",
    "load_ranker_cached",
    "make_pairs",
    "modality_kind",
    "ndcg_at_10_within_groups",
    "pairwise_hinge_loss",
    "preference_labels",
    "query_term_coverage",
    "rows_encoded_count",
    "save_ranker",
    "score_frame",
    "select_device",
    "train_ranker",
    "visual_embedding_matrix",
]
