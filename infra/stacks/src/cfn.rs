//! The little of CloudFormation the stacks need: a template with its sections, the intrinsic
//! functions as plain JSON, and tagging applied to every resource in one place.
//!
//! Templates are `serde_json::Value`s built with `json!`: a resource reads as it reads in the
//! CloudFormation reference, which is what a reviewer compares it with. What is typed is the
//! model the values come from.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// `{"Ref": name}`: a parameter, a resource's primary id, or a pseudo parameter.
pub fn r#ref(name: &str) -> Value {
    json!({ "Ref": name })
}

/// `{"Fn::GetAtt": [resource, attribute]}`.
pub fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

/// `{"Fn::Sub": text}`: `${AWS::AccountId}`, `${Resource}`, `${Resource.Attr}` inside `text`.
pub fn sub(text: impl Into<String>) -> Value {
    json!({ "Fn::Sub": text.into() })
}

/// The ARN of a resource of this account, in `region` (empty for global services such as
/// IAM and Route 53), with the partition and account left to CloudFormation.
pub fn arn(service: &str, region: &str, resource: &str) -> Value {
    let account = if service == "route53" { "" } else { "${AWS::AccountId}" };
    sub(format!("arn:${{AWS::Partition}}:{service}:{region}:{account}:{resource}"))
}

/// How a resource type takes its tags, for the types the stacks use; `None`: not taggable.
fn tag_style(resource_type: &str) -> Option<(&'static str, TagStyle)> {
    Some(match resource_type {
        "AWS::SSM::Parameter" => ("Tags", TagStyle::Map),
        // A global table is tagged replica by replica.
        "AWS::DynamoDB::GlobalTable" => ("Replicas", TagStyle::PerReplica),
        "AWS::Route53::HostedZone" => ("HostedZoneTags", TagStyle::List),
        "AWS::Route53::HealthCheck" => ("HealthCheckTags", TagStyle::List),
        "AWS::KMS::Key"
        | "AWS::Logs::LogGroup"
        | "AWS::SQS::Queue"
        | "AWS::SNS::Topic"
        | "AWS::DynamoDB::Table"
        | "AWS::IAM::Role"
        | "AWS::Lambda::Function"
        | "AWS::Lambda::EventSourceMapping"
        | "AWS::StepFunctions::StateMachine"
        | "AWS::CloudWatch::Alarm"
        | "AWS::SecretsManager::Secret"
        | "AWS::RDS::DBCluster"
        | "AWS::RDS::DBInstance"
        | "AWS::RDS::GlobalCluster"
        | "AWS::Events::Rule" => ("Tags", TagStyle::List),
        _ => return None,
    })
}

/// The resource types that take no tags at all (CloudFormation has no property for them);
/// everything else the stacks emit is tagged. A type in neither list is a build error in
/// [`Template::finish`], so a new type is a deliberate decision.
const UNTAGGABLE: [&str; 9] = [
    "AWS::KMS::Alias",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::Subscription",
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Route53::RecordSet",
    "AWS::CloudWatch::Dashboard",
    "AWS::SNS::TopicPolicy",
    "AWS::Events::EventBusPolicy",
];

#[derive(Debug, Clone, Copy)]
enum TagStyle {
    /// `[{"Key": k, "Value": v}]`
    List,
    /// `{k: v}`
    Map,
    /// `Tags` (a list) in each element of the property's list.
    PerReplica,
}

/// One template under construction.
#[derive(Debug, Clone, Default)]
pub struct Template {
    description: String,
    parameters: BTreeMap<String, Value>,
    resources: BTreeMap<String, Value>,
    outputs: BTreeMap<String, Value>,
}

impl Template {
    pub fn new(description: impl Into<String>) -> Self {
        Template { description: description.into(), ..Template::default() }
    }

    pub fn parameter(&mut self, name: &str, spec: Value) {
        self.parameters.insert(name.to_owned(), spec);
    }

    /// Adds a resource; `definition` holds `Type`, `Properties` and any policies.
    ///
    /// # Panics
    /// When `logical_id` is already taken: two model entries mapping to one id is a bug in the
    /// stack code, never input.
    pub fn resource(&mut self, logical_id: &str, definition: Value) {
        let previous = self.resources.insert(logical_id.to_owned(), definition);
        assert!(previous.is_none(), "logical id {logical_id} emitted twice");
    }

    pub fn output(&mut self, name: &str, description: &str, value: Value) {
        self.outputs.insert(name.to_owned(), json!({ "Description": description, "Value": value }));
    }

    /// The template, with `tags` on every taggable resource.
    ///
    /// # Panics
    /// On a resource type the tagging table does not know (see [`UNTAGGABLE`]).
    pub fn finish(mut self, tags: &[(&str, String)]) -> Value {
        for (id, resource) in &mut self.resources {
            let kind = resource["Type"].as_str().unwrap_or_default().to_owned();
            match tag_style(&kind) {
                Some((property, style)) => {
                    let value = match style {
                        TagStyle::List => {
                            Value::Array(tags.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect())
                        }
                        TagStyle::Map => Value::Object(tags.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect()),
                        TagStyle::PerReplica => {
                            let list: Vec<Value> = tags.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect();
                            for replica in resource["Properties"][property].as_array_mut().into_iter().flatten() {
                                replica["Tags"] = Value::Array(list.clone());
                            }
                            continue;
                        }
                    };
                    resource["Properties"][property] = value;
                }
                None => assert!(UNTAGGABLE.contains(&kind.as_str()), "{id}: tagging of {kind} undecided"),
            }
        }
        let mut out = Map::new();
        out.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
        out.insert("Description".into(), json!(self.description));
        if !self.parameters.is_empty() {
            out.insert("Parameters".into(), json!(self.parameters));
        }
        out.insert("Resources".into(), json!(self.resources));
        if !self.outputs.is_empty() {
            out.insert("Outputs".into(), json!(self.outputs));
        }
        Value::Object(out)
    }
}

/// A JSON value serialized with every object's keys sorted. The text must not depend on
/// serde_json's `preserve_order` feature, which a workspace-wide build (the test command) can
/// switch on through another crate's dependencies while `cargo xtask synth` alone does not.
#[derive(Debug)]
pub struct Sorted<'a>(pub &'a Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    out.serialize_entry(k, &Sorted(v))?;
                }
                out.end()
            }
            Value::Array(items) => s.collect_seq(items.iter().map(Sorted)),
            other => other.serialize(s),
        }
    }
}

/// `value` as compact JSON text with sorted keys: JSON embedded in a string property (a
/// dashboard body, an environment variable) reads the same whatever the build's features.
pub fn compact(value: &Value) -> String {
    serde_json::to_string(&Sorted(value)).unwrap_or_default()
}

pub use switchyard_model::pascal;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_gets_the_tags_in_its_own_shape() {
        let mut t = Template::new("t");
        t.resource("Q", json!({ "Type": "AWS::SQS::Queue", "Properties": {} }));
        t.resource("P", json!({ "Type": "AWS::SSM::Parameter", "Properties": { "Type": "String", "Value": "1" } }));
        t.resource("R", json!({ "Type": "AWS::Route53::RecordSet", "Properties": {} }));
        let out = t.finish(&[("project", "switchyard".into())]);
        assert_eq!(out["Resources"]["Q"]["Properties"]["Tags"], json!([{ "Key": "project", "Value": "switchyard" }]));
        assert_eq!(out["Resources"]["P"]["Properties"]["Tags"], json!({ "project": "switchyard" }));
        assert!(out["Resources"]["R"]["Properties"].get("Tags").is_none());
    }

    #[test]
    #[should_panic(expected = "tagging of AWS::EC2::VPC undecided")]
    fn an_unknown_type_is_a_decision_not_a_default() {
        let mut t = Template::new("t");
        t.resource("V", json!({ "Type": "AWS::EC2::VPC", "Properties": {} }));
        let _ = t.finish(&[]);
    }

    #[test]
    fn names_become_logical_ids() {
        assert_eq!(pascal("rds-promoter"), "RdsPromoter");
        assert_eq!(pascal("us-east-2"), "UsEast2");
    }
}
