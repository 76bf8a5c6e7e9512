"""Who may do what with the footage: cases, people and permissions, exports and coverage."""
