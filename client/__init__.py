"""Freshet client SDK: Producer, Consumer and Admin over gRPC.

Imports the wire contract and storage's record-batch codec only; never server or metadata code.
"""
