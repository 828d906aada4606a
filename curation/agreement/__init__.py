"""Inter-reader agreement, consensus and annotator rewards for the annotation round: the long
reading table (`table`), agreement statistics with bootstrap intervals (`statistics`), consensus and
rewards. Modules are imported by name; this package re-exports nothing so each stays independent."""
