//! `rseq-sim`: the deterministic engine (under construction).
