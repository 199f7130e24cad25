-- One analysis record per finished call (agents/analysis/record.py): the columns hold
-- what lists and filters need (outcome, success, priority, new lead); `record` the whole
-- record as JSON. No foreign key to calls: the call row is written through its own
-- write-behind lane and may land after its analysis. `notified` says what the owner's
-- new-lead notice did per channel ({"sms": "queued", "email": "refused", ...}).

CREATE TABLE call_analyses (
    call_sid TEXT NOT NULL PRIMARY KEY,
    created_at ${ts} NOT NULL,
    direction TEXT NOT NULL,
    outcome TEXT NOT NULL,
    success ${bool} NOT NULL,
    priority TEXT NOT NULL,
    new_lead ${bool} NOT NULL,
    summary TEXT NOT NULL,
    record ${json} NOT NULL,
    notified ${json} NOT NULL DEFAULT ${json_object}
);
CREATE INDEX call_analyses_outcome ON call_analyses (outcome, created_at);
