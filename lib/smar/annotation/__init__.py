"""Step 2, budgeted page annotation: candidate pages, the Label Studio round trip, iso-label
anchor rounds and the annotation cost.

| module | holds |
|---|---|
| `strategies` | which items of a modality's ranked list get a label, and the display order |
| `tasks` | candidate pages and task frames (Spark), iso-label rounds |
| `iso_label` | the binary search of grade boundaries (pure Python) |
| `label_studio` | Label Studio task JSON, labeling config, export and CSV parsing (pure) |
| `export`, `labels`, `cost` | export files, label checks and consensus, the cost table |
| `simulate` | simulated annotators (noise and disagreement) writing real exports |
| `summaries` | what each job returns |
| `jobs` | the job bodies |
"""
