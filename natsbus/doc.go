// Package natsbus implements demur.Bus on NATS JetStream.
//
// A Bus is either embedded ([Embedded]: a nats-server running inside the
// process, reachable without a TCP port unless asked for) or joined to an
// external server or cluster ([Connect]).
//
// # Streams
//
// Opening a Bus makes sure two streams exist:
//
//   - DEMUR_TASKS captures demur.task.> (demur.SubjectTask) with work-queue
//     retention: a task is stored until a consumer acks it, then removed.
//   - DEMUR_RESULTS captures demur.result.> (demur.SubjectResult), also
//     work-queue retention.
//
// Streams use memory storage on an embedded bus without a StoreDir (the
// audit log, not the bus, is demur's source of truth for resume) and file
// storage otherwise. A stream that already exists with the same subjects and
// retention is used as it is, so many processes and versions can share one
// server.
//
// Control subjects (demur.SubjectControl) are plain core NATS: every current
// subscriber gets each message, nothing is stored.
//
// # Direct hand-over
//
// [Bus.Send], [Bus.HandOff] and [Bus.Listen] (demur.DirectBus) hand a
// message to one listening process over core NATS, on a subject no stream
// captures (demur.SubjectTurn): nothing is stored. Send is a request and
// returns once the listener has acked the message, which the listener may
// do after it has recorded it. HandOff is a plain publish that carries the
// JetStream ack subject of a task delivery in a Demur-Ack header: the
// listener's ack of the message acks that task, so the sender need not
// wait, and a result costs one message instead of three (request, answer,
// the sender's ack). A listener only publishes an ack to a subject that
// acks a DEMUR_TASKS message ([ErrNotTaskAck] otherwise). Either way a
// message nobody acks is sent again by its sender. Agents hand results to
// their coordinator this way: a result needs no storage on the bus when
// the agent's task stays unacked until the coordinator has recorded the
// result.
//
// # Consumers
//
// [Bus.Consume] opens a durable pull consumer filtered on one subject. The
// JetStream consumer name is the durable name plus a hash of the subject, so
// the same durable name used for two jobs names two consumers instead of one
// consumer whose filter flips between jobs. Processes calling Consume with
// the same subject and durable share one consumer and so split the work.
// Because the streams are work queues, two consumers with different durable
// names may not have overlapping filters (JetStream refuses the second).
//
// Next takes one message at a time by default (Options.Prefetch), so a slow
// agent never holds tasks an idle one could run.
//
// Ack does not wait for the server (a lost ack only means a redelivery);
// AckSync does. [Bus.PublishBatch] stores several messages with one wait
// for the server's acknowledgements.
//
// A message not acked within AckWait, or nak'ed, is redelivered, at most
// MaxDeliver times in all. A message that reached MaxDeliver stays in the
// stream, undelivered, until [Bus.PurgeJob] removes it.
//
// # Clusters
//
// EmbeddedOptions.Cluster makes the embedded server one node of a NATS
// cluster (routes over TCP); with Options.Replicas set to 3 the streams
// survive the loss of a node. [Connect] joins an external cluster the same
// way it joins a single server.
package natsbus
