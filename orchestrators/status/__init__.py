"""Operators' view: what the ledger says about requests and incidents, as the contract's status JSON."""
