"""Step 3 of SMAR: the whole-page reranker and its training losses (page loss plus the
intra-modal consistency term that keeps each single-modal ranker's order)."""
