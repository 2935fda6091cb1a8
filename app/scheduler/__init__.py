"""The scheduler: each pass enqueues the invitations and reminders that surveys are owed
and sends what the outbox holds (those, and safety alerts), by SMTP or into files.

Passes may run at the same time, in any number of processes: an owed message is
enqueued once (a conditional update and a unique key) and sent by one sender (a lease).
"""
