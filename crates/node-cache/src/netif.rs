//! (being written: network side)
