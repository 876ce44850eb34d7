"""Step 2 of SMAR: choose which items get a page-level label, find iso-label anchors, and talk to
Label Studio (tasks out, annotation exports in). Pure functions; the Spark jobs call these."""
