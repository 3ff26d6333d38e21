"""Attacks on a running controller (issue 14): each is made the way an attacker would make it,
through the real server (`hallctl run` as a child process) and the real brokers."""
