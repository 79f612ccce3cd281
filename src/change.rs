//! One change a stage would make, for `plan` (stages and the topology reconciler produce them).

use serde::Serialize;

/// One change `apply` would make, for `plan`.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub stage: String,
    pub resource: String,
    /// create | update | replace | start | restart | fix
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

impl Change {
    pub fn new(stage: &str, resource: impl Into<String>, action: &str) -> Self {
        Change {
            stage: stage.into(),
            resource: resource.into(),
            action: action.into(),
            fields: vec![],
            note: None,
        }
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
    pub fn field(mut self, field: &str, from: impl ToString, to: impl ToString) -> Self {
        self.fields.push(FieldChange {
            field: field.into(),
            from: from.to_string(),
            to: to.to_string(),
        });
        self
    }
}
