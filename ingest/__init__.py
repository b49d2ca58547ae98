"""What happens to a docked recorder: plan, copy, probe, sign, record, rules."""
