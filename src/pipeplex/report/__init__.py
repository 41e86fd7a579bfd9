"""What a run leaves behind: transcripts (``transcript``), per-member logs, golden files
(``golden``) and JUnit reports (``junit``).

The modules are imported one by one, so a plain ``pipeplex run`` loads only what it writes.
"""
