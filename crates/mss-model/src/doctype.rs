//! Document types (JDV_J07-XdsTypeCode-CISIS): code → French label.
