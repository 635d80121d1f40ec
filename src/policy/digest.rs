//! One mail per run: the digest. Each horizon's outcome offers its sections (the mails of
//! [`crate::policy::outcome::Outcome::mails`], each with the event that selects it); the
//! attention state changes add theirs. The digest is sent when at least one selected event
//! happened, like an alert manager: an attention that persists is shown in the digest of a
//! run that mails anyway, not mailed again every week.
//!
//! Subject: what happened and what needs attention, one part per section in horizon order
//! (`[model-optimizer] 7d deployed: RMSE ...; 90d attention: CI95 coverage 0.73 < 0.90`).
//! Body: one line per horizon of the run, then each selected section's details, then the
//! health figures; the pictures of the sections are attached.

use crate::domain::{Horizon, MailEvent};
use crate::notify::{Attachment, Email};
use crate::policy::health::AttentionChange;
use crate::policy::outcome::HorizonResult;

/// The subject prefix of every mail.
pub const PREFIX: &str = "[model-optimizer] ";

/// One horizon's part of a digest.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub horizon: Horizon,
    pub event: MailEvent,
    pub email: Email,
}

/// The digest of run `run_id` over `results` (one per horizon, in table order) with the
/// outcomes' `sections`, None when no event `enabled` selects happened.
pub fn digest(
    run_id: &str,
    results: &[HorizonResult],
    sections: &[Section],
    enabled: impl Fn(MailEvent) -> bool,
) -> Option<Email> {
    let mut parts: Vec<(Horizon, String, String, Vec<Attachment>)> = sections
        .iter()
        .filter(|s| enabled(s.event))
        .map(|s| {
            let part = s.email.subject.strip_prefix(PREFIX).unwrap_or(&s.email.subject);
            (
                s.horizon,
                part.to_string(),
                s.email.body.clone(),
                s.email.attachments.clone(),
            )
        })
        .collect();
    if enabled(MailEvent::Attention) {
        parts.extend(results.iter().filter_map(attention_part));
    }
    if parts.is_empty() {
        return None;
    }
    // Stable: a horizon's sections keep their order (the alarm before the verdict).
    parts.sort_by_key(|p| p.0);
    let subject = format!(
        "{PREFIX}{}",
        parts.iter().map(|p| p.1.as_str()).collect::<Vec<_>>().join("; ")
    );
    let mut body = format!("run {run_id}\n\n");
    for r in results {
        body.push_str(&horizon_line(r));
        body.push('\n');
    }
    for (_, part, details, _) in &parts {
        body.push_str(&format!("\n== {part}\n{}", details.trim_end()));
        body.push('\n');
    }
    let figures: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.health
                .as_ref()
                .map(|h| format!("{}: {}", r.horizon, h.figures()))
        })
        .collect();
    if !figures.is_empty() {
        body.push_str(&format!(
            "\n== health of the configs in effect (latest confirmation origins)\n{}\n",
            figures.join("\n")
        ));
    }
    Some(Email {
        subject,
        body,
        attachments: parts.into_iter().flat_map(|p| p.3).collect(),
    })
}

/// `7d: deployed; health ok; <message>` (the message ends in the attention reason when
/// there is one).
fn horizon_line(r: &HorizonResult) -> String {
    let health = match r.health_label() {
        "-" => "not judged",
        label => label,
    };
    let mut line = format!("{}: {}; health {health}", r.horizon, r.action_label());
    if !r.message.is_empty() {
        line.push_str(&format!("; {}", r.message));
    }
    line
}

/// The section of a horizon that entered or left attention.
fn attention_part(r: &HorizonResult) -> Option<(Horizon, String, String, Vec<Attachment>)> {
    let h = r.horizon;
    let figures = r
        .health
        .as_ref()
        .map(crate::policy::health::Health::figures)
        .unwrap_or_default();
    let part = match (r.attention_change?, &r.attention) {
        (AttentionChange::Entered, Some(a)) => format!("{h} attention: {a}"),
        (AttentionChange::Entered, None) => return None,
        (AttentionChange::Left, _) => format!("{h} attention cleared"),
    };
    let details = match r.attention_change? {
        AttentionChange::Entered => format!(
            "The config in effect at {h} fails a health check. It stays deployed; a search that finds a better config replaces it.\n{figures}"
        ),
        AttentionChange::Left => format!("The config in effect at {h} passes every health check again.\n{figures}"),
    };
    Some((h, part, details, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;
    use crate::history::Action;
    use crate::policy::outcome::EffectKind;

    fn result(
        h: usize,
        action: Action,
        attention: Option<&str>,
        change: Option<AttentionChange>,
    ) -> HorizonResult {
        HorizonResult {
            horizon: Horizon(h),
            action,
            effect: EffectKind::Unchanged,
            exit_code: ExitCode::Success,
            message: format!("{} message", action.as_str()),
            verdict: None,
            approved: None,
            failing_criteria: Vec::new(),
            current: None,
            candidate: None,
            triggers: None,
            probation: None,
            search: None,
            validation: None,
            deploy: None,
            plot: None,
            mail_error: None,
            health: None,
            attention: attention.map(str::to_string),
            attention_change: change,
        }
    }

    fn section(h: usize, event: MailEvent, subject: &str) -> Section {
        Section {
            horizon: Horizon(h),
            event,
            email: Email {
                subject: format!("{PREFIX}{subject}"),
                body: format!("details of {subject}\n"),
                attachments: vec![Attachment {
                    filename: format!("{h}d.png"),
                    content_type: "image/png".into(),
                    bytes: vec![1],
                }],
            },
        }
    }

    fn defaults(e: MailEvent) -> bool {
        crate::config::SmtpSettings::default().events.contains(&e)
    }

    #[test]
    fn one_digest_names_the_deploy_and_the_attention_in_horizon_order() {
        let results = [
            result(7, Action::Deployed, None, None),
            result(15, Action::Kept, None, None),
            result(
                90,
                Action::Rejected,
                Some("CI95 coverage 0.73 < 0.90"),
                Some(AttentionChange::Entered),
            ),
        ];
        let sections = [
            section(90, MailEvent::Rejected, "90d rejected: RMSE"),
            section(15, MailEvent::Kept, "15d kept its config"),
            section(7, MailEvent::Deployed, "7d deployed: RMSE 7 -> 6"),
        ];
        let mail = digest("run-1", &results, &sections, defaults).unwrap();
        assert_eq!(
            mail.subject,
            "[model-optimizer] 7d deployed: RMSE 7 -> 6; 90d attention: CI95 coverage 0.73 < 0.90"
        );
        assert!(
            mail.body
                .starts_with("run run-1\n\n7d: deployed; health not judged; deployed message\n15d: kept;"),
            "{}",
            mail.body
        );
        assert!(
            mail.body.contains("\n== 7d deployed: RMSE 7 -> 6\ndetails of"),
            "{}",
            mail.body
        );
        assert!(
            !mail.body.contains("details of 15d"),
            "kept is not a default event: {}",
            mail.body
        );
        assert_eq!(mail.attachments.len(), 1, "the deploy's picture only");
        // Every event selected: each section joins, in horizon order.
        let all = digest("run-1", &results, &sections, |_| true).unwrap();
        assert!(all.subject.starts_with("[model-optimizer] 7d deployed: RMSE 7 -> 6; 15d kept its config; 90d rejected: RMSE; 90d attention"), "{}", all.subject);
    }

    #[test]
    fn nothing_selected_sends_nothing_and_a_persisting_attention_is_not_news() {
        let results = [
            result(7, Action::Kept, None, None),
            result(90, Action::Kept, Some("|bias| 22.9 >= 5 CLP"), None),
        ];
        let sections = [section(7, MailEvent::Kept, "7d kept its config")];
        assert_eq!(digest("r", &results, &sections, defaults), None);
        let left = [result(90, Action::NoTrigger, None, Some(AttentionChange::Left))];
        let mail = digest("r", &left, &[], defaults).unwrap();
        assert_eq!(mail.subject, "[model-optimizer] 90d attention cleared");
        // Attention deselected: no mail for it.
        assert_eq!(digest("r", &left, &[], |e| e != MailEvent::Attention), None);
    }
}
