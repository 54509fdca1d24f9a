"""History layer: commit and tag documents, refs, revision parsing, walks.

History knows a commit's manifest only as an object id (plain data), so it never
imports the manifest module.
"""
