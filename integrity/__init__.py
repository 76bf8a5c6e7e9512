"""evidock: pure integrity core. Imports nothing of ours; no DB, network or clock."""
