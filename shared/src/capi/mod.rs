//! Cluster API objects built from a revision (being written).
