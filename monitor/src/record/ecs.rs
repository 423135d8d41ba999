//! The ECS JSON form of records and alerts (what every output writes).

use std::collections::BTreeMap;

use serde::Serialize;

use super::*;

impl ConnectionRecord {
    /// Writes the record as one JSON line (with the trailing newline) into `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let doc = EcsDoc::event(self, "event");
        // Serializing plain structs of strings and numbers into a Vec cannot fail.
        serde_json::to_writer(&mut *out, &doc).expect("serialize record");
        out.push(b'\n');
    }

    pub fn to_json_line(&self) -> String {
        let mut v = Vec::with_capacity(512);
        self.write_json(&mut v);
        String::from_utf8(v).expect("serde_json writes UTF-8")
    }
}

impl Alert {
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut doc = EcsDoc::event(&self.event, "alert");
        doc.timestamp = self.timestamp.to_rfc3339();
        doc.event.severity = Some(self.level.severity());
        doc.event.risk_score = self.risk_score;
        doc.rule = Some(RuleOut {
            id: &self.rule.id,
            name: &self.rule.name,
            description: &self.rule.description,
            reference: &self.rule.reference,
            ruleset: &self.rule.ruleset,
        });
        doc.threat = Some(ThreatOut {
            framework: "MITRE ATT&CK",
            technique: TechniqueOut {
                id: &self.techniques,
            },
        });
        if !self.labels.is_empty() {
            doc.labels = Some(&self.labels);
        }
        doc.monitor.detector = Some(self.detector.as_str());
        doc.monitor.level = Some(self.level.as_str());
        doc.monitor.aggregate = self.aggregate.as_ref();
        doc.monitor.beacon = self.beacon.as_ref();
        serde_json::to_writer(&mut *out, &doc).expect("serialize alert");
        out.push(b'\n');
    }

    pub fn to_json_line(&self) -> String {
        let mut v = Vec::with_capacity(1024);
        self.write_json(&mut v);
        String::from_utf8(v).expect("serde_json writes UTF-8")
    }
}

// ---- ECS output documents ------------------------------------------------------------

#[derive(Serialize)]
struct EcsDoc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: EventOut,
    host: HostOut<'a>,
    process: ProcessOut<'a>,
    user: UserOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<IdOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<EndpointOut>,
    destination: EndpointOut,
    network: NetworkOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<ContainerOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<RuleOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threat: Option<ThreatOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a BTreeMap<String, String>>,
    monitor: MonitorOut<'a>,
}

impl<'a> EcsDoc<'a> {
    fn event(r: &'a ConnectionRecord, kind: &'static str) -> Self {
        let p = &*r.process;
        EcsDoc {
            timestamp: r.timestamp.to_rfc3339(),
            event: EventOut {
                kind,
                category: ["network"],
                r#type: ["connection", "start"],
                action: r.transport.action(),
                severity: None,
                risk_score: None,
            },
            host: HostOut {
                hostname: &r.host_name,
            },
            process: ProcessOut {
                pid: p.pid,
                thread: p.tid.map(|id| ThreadOut { id }),
                name: p.name.as_deref(),
                executable: p.executable.as_deref(),
                command_line: p.command_line.as_deref(),
                args: if p.args.is_empty() {
                    None
                } else {
                    Some(&p.args)
                },
                parent: ParentOut {
                    pid: p.parent.pid,
                    name: p.parent.name.as_deref(),
                    executable: p.parent.executable.as_deref(),
                    command_line: p.parent.command_line.as_deref(),
                },
            },
            user: UserOut {
                id: p.user_id.map(|u| u.to_string()),
                name: p.user_name.as_deref(),
            },
            group: p.group_id.map(|g| IdOut { id: g.to_string() }),
            source: r.source.map(|s| EndpointOut {
                ip: s.ip.to_string(),
                port: if s.port == 0 { None } else { Some(s.port) },
            }),
            destination: EndpointOut {
                ip: r.destination.ip.to_string(),
                port: Some(r.destination.port),
            },
            network: NetworkOut {
                transport: r.transport.as_str(),
                r#type: r.network_type(),
                direction: "egress",
            },
            container: p.container_id.as_deref().map(|id| ContainerOut { id }),
            rule: None,
            threat: None,
            labels: None,
            monitor: MonitorOut {
                enrichment: if r.partial { "partial" } else { "full" },
                suppressed: if r.suppressed == 0 {
                    None
                } else {
                    Some(r.suppressed)
                },
                probe: r.probe,
                detector: None,
                level: None,
                aggregate: None,
                beacon: None,
            },
        }
    }
}

#[derive(Serialize)]
struct EventOut {
    kind: &'static str,
    category: [&'static str; 1],
    r#type: [&'static str; 2],
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_score: Option<u32>,
}

#[derive(Serialize)]
struct HostOut<'a> {
    hostname: &'a str,
}

#[derive(Serialize)]
struct ThreadOut {
    id: u32,
}

#[derive(Serialize)]
struct ProcessOut<'a> {
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread: Option<ThreadOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executable: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a Vec<String>>,
    parent: ParentOut<'a>,
}

#[derive(Serialize)]
struct ParentOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executable: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_line: Option<&'a str>,
}

#[derive(Serialize)]
struct UserOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct IdOut {
    id: String,
}

#[derive(Serialize)]
struct EndpointOut {
    ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

#[derive(Serialize)]
struct NetworkOut {
    transport: &'static str,
    r#type: &'static str,
    direction: &'static str,
}

#[derive(Serialize)]
struct ContainerOut<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct RuleOut<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    reference: &'a [String],
    ruleset: &'a str,
}

#[derive(Serialize)]
struct ThreatOut<'a> {
    framework: &'static str,
    technique: TechniqueOut<'a>,
}

#[derive(Serialize)]
struct TechniqueOut<'a> {
    id: &'a [String],
}

#[derive(Serialize)]
struct MonitorOut<'a> {
    enrichment: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detector: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregate: Option<&'a Aggregate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    beacon: Option<&'a BeaconStats>,
}
